//! `GET /metrics/user/{user_id}/actions`: one user's count per action.

use kit::{ApiError, db, json};
use serde_json::json;
use spin_sdk::http::{Request, Response};

use crate::Params;
use crate::counters;
use crate::tracked::UserId;

/// Handles the request: 200 `{"user_id": "<id>", "actions": {...}}`; a user
/// with no events has empty `actions`.
///
/// # Errors
///
/// 422 on an over-long id, 503/500 on database failure.
pub fn handle(_: &Request, params: &Params) -> Result<Response, ApiError> {
    let raw = params.param("user_id").unwrap_or_default().to_owned();
    let user_id = UserId::from_text(raw).map_err(|e| ApiError::invalid("user_id", e))?;
    let conn = db::connect()?;
    let actions = counters::by_user(&conn, user_id.as_str())?;
    json::respond(
        200,
        &json!({ "user_id": user_id.as_str(), "actions": actions }),
    )
}
