//! `GET /metrics/actions`: how often each action happened.

use kit::{ApiError, db, json};
use spin_sdk::http::{Request, Response};

use crate::Params;
use crate::counters;

/// Handles the request: 200 `{"<action>": <count>, ...}`.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn handle(_: &Request, _: &Params) -> Result<Response, ApiError> {
    let conn = db::connect()?;
    json::respond(200, &counters::by_action(&conn)?)
}
