//! `GET /auth/me`: the caller's account.

use kit::{ApiError, bearer, db, json};
use spin_sdk::http::{Request, Response};

use crate::users;

/// Handles the request: 200 with the user.
///
/// # Errors
///
/// 401 without a valid token or when the account no longer exists.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let caller = bearer::authenticate(req)?;
    let conn = db::connect()?;
    let user = users::find_by_id(&conn, caller.id)?
        .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
    json::respond(200, &user)
}
