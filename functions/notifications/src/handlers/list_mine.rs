//! `GET /notifications`: the caller's own notifications.

use kit::{ApiError, bearer, db, json};
use spin_sdk::http::{Request, Response};

use crate::store;

/// Most notifications returned at once.
const LIMIT: u32 = 100;

/// Handles the request: 200 with a JSON array of the caller's latest
/// notifications (at most 100), newest first.
///
/// # Errors
///
/// 401 without a valid bearer token, 503/500 on database failure.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let caller = bearer::authenticate(req)?;
    let conn = db::connect()?;
    let notifications = store::latest_for(&conn, &caller.id.to_string(), LIMIT)?;
    json::respond(200, &notifications)
}
