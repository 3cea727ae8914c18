//! `GET /posts/health`: liveness.

use kit::{ApiError, json};
use serde_json::json;
use spin_sdk::http::{Request, Response};

/// Handles the request: 200 `{"status":"ok","service":"posts"}`.
///
/// # Errors
///
/// Only if serialization fails (a bug).
pub fn handle(_: &Request) -> Result<Response, ApiError> {
    json::respond(200, &json!({ "status": "ok", "service": "posts" }))
}
