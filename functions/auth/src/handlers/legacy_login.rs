//! `POST /login`: the seed service's login, kept for old clients.
//!
//! Answers `{access_token, token_type: "bearer", token}` only (`token`
//! is the same JWT, for clients of the Express service); no refresh token.

use kit::{ApiError, db};
use spin_sdk::http::{Request, Response};

use crate::handlers::legacy_register;
use crate::handlers::login;

/// Handles the request.
///
/// # Errors
///
/// 401 on bad credentials, 403 for an unverified account when
/// verification is required, 422 on a malformed attempt.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let attempt = login::parse(req)?;
    let conn = db::connect()?;
    let account = login::check(&conn, &attempt)?;
    legacy_register::respond_with_token(account.user.id, account.user.role, account.generation)
}
