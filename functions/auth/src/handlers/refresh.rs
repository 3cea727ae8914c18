//! `POST /auth/refresh`: trade a refresh token for a new pair.

use kit::{ApiError, db, json};
use serde::Deserialize;
use spin_sdk::http::{Request, Response};

use super::login;
use crate::refresh_tokens::{self, RefreshToken};
use crate::session;

/// The request body.
#[derive(Debug, Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

/// Handles the request: 200 with a new pair; the presented token is spent.
///
/// # Errors
///
/// 401 for an unknown, expired, revoked or already used token (the last
/// also revokes the token's whole family); 403 `email-not-verified` for an
/// unverified account when the deployment requires verified addresses
/// (`email_verification_required`); 422 for an empty token.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let body: RefreshBody = json::parse(req)?;
    let presented = body.refresh_token.trim();
    if presented.is_empty() {
        return Err(ApiError::invalid(
            "refresh_token",
            "refresh_token is required",
        ));
    }
    let conn = db::connect()?;
    let next = RefreshToken::generate()?;
    let verified_only = login::verification_required()?;
    match refresh_tokens::rotate(&conn, presented, &next, verified_only)? {
        Some(account) => {
            // The presented token is spent either way, and an unverified
            // account got no successor: it logs in again once its
            // address is verified.
            login::require_verified_address(account.email_verified)?;
            json::respond(
                200,
                &session::pair(account.user_id, account.role, account.generation, next)?,
            )
        }
        None => {
            if refresh_tokens::revoke_family_if_reused(&conn, presented)? {
                eprintln!("refresh token reuse detected; family revoked");
            }
            Err(ApiError::Unauthorized(
                "the refresh token is invalid, expired or already used".into(),
            ))
        }
    }
}
