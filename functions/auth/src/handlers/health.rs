//! `GET /auth/health`: liveness, and with `?deep=1` database reachability.

use kit::{ApiError, db, json};
use serde_json::json;
use spin_sdk::http::{Request, Response};

/// Handles the request: 200 `{"status":"ok","service":"auth"}`.
///
/// # Errors
///
/// 503 when `deep=1` and Postgres is unreachable.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let deep = req
        .query()
        .split('&')
        .any(|pair| matches!(pair, "deep=1" | "deep=true"));
    if deep {
        let conn = db::connect()?;
        conn.one(&db::Statement::new("SELECT 1"), &[])
            .map_err(|e| e.doing("health check"))?;
    }
    json::respond(200, &json!({ "status": "ok", "service": "auth" }))
}
