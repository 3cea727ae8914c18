//! What the bridge's email and SMS sinks report back (source
//! `/bridge/<sink>`, subject `notification/<id>`), version 1:
//!
//! ```json
//! notification.delivered:
//!   {"version": 1, "notification_id": "<uuid>", "channel": "email" | "sms", "status": "sent"}
//! notification.delivery_failed:
//!   {"version": 1, "notification_id": "<uuid>", "channel": "email" | "sms", "status": "failed",
//!    "error": "<sealed text, associated data notification.delivery_failed>"}
//! ```
//!
//! `delivered` moves the notification from `queued` (or `failed`, after a
//! redrive) to `sent`, with `notification.sent` in the same statement;
//! `delivery_failed` moves it from `queued` to `failed` with the error.
//! Any other move is refused by the table (`sent` is final), and a report
//! that would not change anything is acknowledged as a duplicate: the
//! status itself makes the reports idempotent.

use kit::ApiError;
use kit::cloudevent::CloudEvent;
use kit::config;
use kit::db::Connection;
use serde::Deserialize;
use spinmesh_delivery::seal::{self, SEALING_KEY_VARIABLE};
use uuid::Uuid;

use crate::store;

/// A sent notification's report.
pub const DELIVERED: &str = "notification.delivered";
/// A failed notification's report.
pub const DELIVERY_FAILED: &str = "notification.delivery_failed";

/// What a sink said about a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// It went out.
    Delivered {
        /// The notification.
        notification_id: Uuid,
    },
    /// The delivery policy gave it up.
    Failed {
        /// The notification.
        notification_id: Uuid,
        /// Why, opened.
        error: String,
    },
}

#[derive(Debug, Deserialize)]
struct ReportData {
    notification_id: Uuid,
    #[serde(default)]
    error: Option<String>,
}

/// The report `event` is; `None` for other types.
///
/// # Errors
///
/// 422 naming the field when the data is not a version 1 report; 500 when
/// `message_sealing_key` is not set (a failure's error is sealed).
pub fn report_of(event: &CloudEvent) -> Result<Option<Report>, ApiError> {
    match event.kind.as_str() {
        DELIVERED => {
            let data: ReportData = event.data_as()?;
            Ok(Some(Report::Delivered {
                notification_id: data.notification_id,
            }))
        }
        DELIVERY_FAILED => {
            let data: ReportData = event.data_as()?;
            let key = config::get(SEALING_KEY_VARIABLE)?;
            let error = data
                .error
                .and_then(|sealed| seal::open(&key, DELIVERY_FAILED, &sealed).ok())
                .and_then(|plain| String::from_utf8(plain).ok())
                .unwrap_or_else(|| "the delivery failed (no readable reason)".to_owned());
            Ok(Some(Report::Failed {
                notification_id: data.notification_id,
                error,
            }))
        }
        _ => Ok(None),
    }
}

/// Applies `report`; `true` when the notification changed.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn apply(conn: &Connection, report: &Report) -> Result<bool, ApiError> {
    let changed = match report {
        Report::Delivered { notification_id } => store::mark_sent(conn, *notification_id)?,
        Report::Failed {
            notification_id,
            error,
        } => store::mark_failed(conn, *notification_id, error)?,
    };
    if let Some(notification) = &changed {
        eprintln!(
            "notification {} over {}: {}",
            notification.id, notification.channel, notification.status
        );
    }
    Ok(changed.is_some())
}
