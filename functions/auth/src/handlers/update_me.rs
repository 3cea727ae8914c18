//! `PATCH /auth/me`: change the caller's username.

use kit::domain::Username;
use kit::{ApiError, bearer, db, json};
use serde::Deserialize;
use spin_sdk::http::{Request, Response};

use crate::users::{self, WriteError};

/// The request body.
#[derive(Debug, Deserialize)]
struct UpdateBody {
    username: String,
}

/// Handles the request: 200 with the updated user.
///
/// # Errors
///
/// 409 when the username is taken, 422 when it is invalid.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let caller = bearer::authenticate(req)?;
    let body: UpdateBody = json::parse(req)?;
    let username = Username::parse(body.username).map_err(|e| ApiError::invalid("username", e))?;
    let conn = db::connect()?;
    let user = users::update_username(&conn, caller.id, &username)
        .map_err(|err| match err {
            WriteError::Db(api) => api,
            taken => ApiError::Conflict(taken.to_string()),
        })?
        .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
    json::respond(200, &user)
}
