//! `POST /events`: record an event a client reports.

use kit::{ApiError, db, json};
use serde_json::json;
use spin_sdk::http::{Request, Response};

use crate::Params;
use crate::counters;
use crate::tracked::{TrackBody, Tracked};

/// Handles the request: 200 `{"status":"event_recorded","total_events":n}`.
///
/// # Errors
///
/// 400/413 on an unreadable body, 422 on invalid fields, 503/500 on
/// database failure.
pub fn handle(req: &Request, _: &Params) -> Result<Response, ApiError> {
    let event: Tracked = json::parse::<TrackBody>(req)?.try_into()?;
    let conn = db::connect()?;
    let total = counters::record(&conn, &event)?;
    json::respond(
        200,
        &json!({ "status": "event_recorded", "total_events": total }),
    )
}
