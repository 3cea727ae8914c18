//! `POST /register`: the seed service's registration, kept for old clients.
//!
//! Same validation as `/auth/register`, but answers like the original
//! FastAPI service: 200 with `{access_token, token_type: "bearer"}` (plus
//! `token`, the same token, for Express clients), and a
//! duplicate e-mail is a 400. When `email_verification_required` is on,
//! no token is handed to the new, unverified account: the account is
//! created (its verification e-mail on its way) and the answer is the
//! login's 403 `email-not-verified`.

use kit::{ApiError, config, json};
use serde::Serialize;
use spin_sdk::http::{Request, Response};

use crate::handlers::login;
use crate::handlers::register::{self, RegisterError};

/// The seed service's token response.
#[derive(Debug, Serialize)]
struct LegacyToken {
    /// The EdDSA JWT.
    access_token: String,
    /// Always `bearer` (lowercase, as the seed service sent it).
    token_type: &'static str,
    /// The same token again, under the name the Express service's
    /// `POST /login` used.
    token: String,
}

/// Issues an access token for `user` (of token `generation`) and answers
/// 200 in the seed shape.
///
/// # Errors
///
/// 500 when the signing key is unusable.
pub fn respond_with_token(
    user_id: uuid::Uuid,
    role: kit::domain::Role,
    generation: u64,
) -> Result<Response, ApiError> {
    let access = config::token_signer()?.issue(user_id, role, generation)?;
    json::respond(
        200,
        &LegacyToken {
            token: access.token.clone(),
            access_token: access.token,
            token_type: "bearer",
        },
    )
}

/// Handles the request.
///
/// # Errors
///
/// 400 on a duplicate, 422 on invalid fields, 403 when verified addresses
/// are required.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let new_user = register::parse(req)?;
    let user = register::create(&new_user).map_err(|err| match err {
        RegisterError::Taken(taken) => ApiError::BadRequest(taken.to_string()),
        RegisterError::Api(api) => api,
    })?;
    login::require_verified(&user)?;
    // A new account is at generation 0.
    respond_with_token(user.id, user.role, 0)
}
