//! `POST /auth/logout`: end a session.

use kit::{ApiError, bearer, cache, db, json};
use serde::Deserialize;
use spin_sdk::http::{Request, Response};

use crate::refresh_tokens;

/// The optional request body.
#[derive(Debug, Deserialize)]
struct LogoutBody {
    #[serde(default)]
    refresh_token: Option<String>,
}

/// Handles the request: 204. The access token goes on the denylist until
/// it expires; a refresh token in the body has its family revoked.
///
/// # Errors
///
/// 401 without a valid bearer token; 503 when Postgres or Redis is down.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let user = bearer::authenticate(req)?;
    let body: Option<LogoutBody> = json::parse_optional(req)?;
    if let Some(token) = body.and_then(|b| b.refresh_token) {
        let token = token.trim();
        if !token.is_empty() {
            let conn = db::connect()?;
            refresh_tokens::revoke_family(&conn, user.id, token)?;
        }
    }
    bearer::revoke(&cache::connect()?, &user)?;
    Ok(Response::builder().status(204).build())
}
