//! `POST /auth/verify-email`: prove the account reads its address, with
//! the token from the verification e-mail. A JSON body gets a JSON answer;
//! the form the e-mail link's page posts gets a page
//! ([`super::verify_email_link::confirm`]).

use kit::query::Query;
use kit::{ApiError, db, json};
use serde::{Deserialize, Serialize};
use spin_sdk::http::{Request, Response};

use crate::account_tokens::{self, PresentedToken, VerifyError};

/// The request body.
#[derive(Debug, Deserialize)]
struct VerifyBody {
    token: String,
}

/// The answer.
#[derive(Debug, Serialize)]
struct Verified {
    /// Always `true`.
    email_verified: bool,
}

/// Parses a presented verification token.
///
/// # Errors
///
/// 422 naming `token` when it cannot be one of ours (an access token, say).
pub fn parse_token(raw: &str) -> Result<PresentedToken, ApiError> {
    PresentedToken::parse(raw).map_err(|e| ApiError::invalid("token", e))
}

/// Spends `token` and marks its account verified.
///
/// # Errors
///
/// The token's refusal (422 unknown, 410 used or expired); 503/500.
pub fn verify(token: &PresentedToken) -> Result<(), VerifyError> {
    let conn = db::connect()?;
    account_tokens::verify_email(&conn, token)
}

/// Handles the request: 200 `{"email_verified": true}`.
///
/// # Errors
///
/// 400/413 for an unreadable body; 422 for a malformed or unknown token;
/// 410 `token-used` or `token-expired` for a spent one.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    if Query::is_form(req) {
        return super::verify_email_link::confirm(req);
    }
    let body: VerifyBody = json::parse(req)?;
    let token = parse_token(&body.token)?;
    verify(&token)?;
    json::respond(
        200,
        &Verified {
            email_verified: true,
        },
    )
}
