//! The `notifications` table, and the `notification.sent` event written
//! with each sent notification.

use kit::ApiError;
use kit::db::{self, Connection, DbValue, Doing as _, ParameterValue, Statement};
use kit::idempotency::Claim;
use kit::outbox::{self, EventSpec};
use serde::Serialize;

use uuid::Uuid;

use crate::channel::Channel;
use crate::handlers::deliver::Notice;

/// `notification.sent`, emitted with every notification stored as `sent`
/// (aggregate `notifications`, subject = notification id). Data, version 1:
///
/// ```json
/// {"version": 1, "notification_id": "<uuid>", "user_id": "<id>",
///  "channel": "log" | "webhook", "event_id": "<uuid of the cause>" | null}
/// ```
pub const NOTIFICATION_SENT: EventSpec = EventSpec {
    source: "/notifications",
    kind: "notification.sent",
    aggregate: "notifications",
    subject: "id",
    version: 1,
    fields: &[
        ("notification_id", "changed.id"),
        ("user_id", "changed.user_id"),
        ("channel", "changed.channel"),
        ("event_id", "changed.event_id"),
    ],
    only_when: Some("changed.status = 'sent'"),
};

/// A stored notification as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// Primary key.
    pub id: String,
    /// The recipient.
    pub user_id: String,
    /// `log` or `webhook`.
    pub channel: String,
    /// The text.
    pub message: String,
    /// `sent` or `failed`.
    pub status: String,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The event that caused it, if any.
    pub event_id: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Delivered.
    Sent,
    /// Not delivered, with the reason.
    Failed(String),
}

/// The `RETURNING` list, in the order [`from_row`] reads it.
fn returning() -> String {
    format!(
        "RETURNING id::text AS id, user_id, channel, message, status, error, \
         event_id::text AS event_id, {} AS created_at",
        kit::rfc3339!("created_at")
    )
}

fn from_row(row: &[DbValue]) -> anyhow::Result<Notification> {
    Ok(Notification {
        id: db::column(row, 0, "id")?,
        user_id: db::column(row, 1, "user_id")?,
        channel: db::column(row, 2, "channel")?,
        message: db::column(row, 3, "message")?,
        status: db::column(row, 4, "status")?,
        error: db::column(row, 5, "error")?,
        event_id: db::column(row, 6, "event_id")?,
        created_at: db::column(row, 7, "created_at")?,
    })
}

/// Stores a notification after a delivery attempt; a `sent` one emits
/// [`NOTIFICATION_SENT`] in the same statement.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn insert(
    conn: &Connection,
    user_id: &str,
    channel: Channel,
    message: &str,
    status: &Status,
) -> Result<Notification, ApiError> {
    let (status, error) = match status {
        Status::Sent => ("sent", ParameterValue::DbNull),
        Status::Failed(why) => ("failed", ParameterValue::Str(why.clone())),
    };
    let change = format!(
        "INSERT INTO notifications (user_id, channel, message, status, error) \
         VALUES ($1::text, $2::text, $3::text, $4::text, $5::text) {}",
        returning()
    );
    let params = [
        ParameterValue::Str(user_id.to_owned()),
        ParameterValue::Str(channel.as_str().to_owned()),
        ParameterValue::Str(message.to_owned()),
        ParameterValue::Str(status.to_owned()),
        error,
    ];
    let rows = outbox::query(conn, &NOTIFICATION_SENT, &change, &params)
        .doing("storing a notification")?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("INSERT returned no row")))?;
    from_row(row).map_err(ApiError::Internal)
}

/// Stores the `log` notifications a batch of delivered events causes,
/// each once per event in one statement with its claim and
/// [`NOTIFICATION_SENT`]: events processed before store nothing. Returns
/// the notifications stored now.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn insert_all_once(
    conn: &Connection,
    consumer: &str,
    notices: &[(Uuid, Notice)],
) -> Result<Vec<Notification>, ApiError> {
    if notices.is_empty() {
        return Ok(Vec::new());
    }
    let [input, claim] = Claim::batch_ctes("event_id uuid, user_id text, message text");
    let change = format!(
        "INSERT INTO notifications (user_id, channel, message, status, event_id) \
         SELECT i.user_id, 'log', i.message, 'sent', i.event_id \
         FROM input i JOIN claim USING (event_id) {}",
        returning()
    );
    let rows: Vec<serde_json::Value> = notices
        .iter()
        .map(|(event_id, notice)| {
            serde_json::json!({
                "event_id": event_id,
                "user_id": notice.user_id,
                "message": notice.message,
            })
        })
        .collect();
    let rows = conn
        .rows(
            &NOTIFICATION_SENT.wrap_after(&[&input, &claim], &change),
            &Claim::batch_params(consumer, rows),
        )
        .doing("storing events' notifications")?;
    db::decode_all(&rows, from_row)
}

/// A user's latest notifications, newest first.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn latest_for(
    conn: &Connection,
    user_id: &str,
    limit: u32,
) -> Result<Vec<Notification>, ApiError> {
    let sql = Statement::new(format!(
        "SELECT id::text, user_id, channel, message, status, error, event_id::text, {} \
         FROM notifications WHERE user_id = $1::text \
         ORDER BY created_at DESC, id DESC LIMIT $2::bigint",
        kit::rfc3339!("created_at")
    ));
    let params = [
        ParameterValue::Str(user_id.to_owned()),
        ParameterValue::Int64(i64::from(limit)),
    ];
    let rows = conn.rows(&sql, &params).doing("listing notifications")?;
    db::decode_all(&rows, from_row)
}
