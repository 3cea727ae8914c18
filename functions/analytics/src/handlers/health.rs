//! `GET /analytics/health`: liveness.

use kit::{ApiError, json};
use serde_json::json;
use spin_sdk::http::{Request, Response};

use crate::Params;

/// Handles the request: 200 `{"status":"ok","service":"analytics"}`.
///
/// # Errors
///
/// Only if serialization fails (a bug).
pub fn handle(_: &Request, _: &Params) -> Result<Response, ApiError> {
    json::respond(200, &json!({ "status": "ok", "service": "analytics" }))
}
