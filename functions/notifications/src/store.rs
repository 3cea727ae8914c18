//! The `notifications` table, and the events written with its changes:
//! `notification.sent` with each notification stored or marked `sent`,
//! and the request event with each one queued for a sink (see
//! [`crate::outbound`]).

use kit::ApiError;
use kit::db::{self, Connection, DbValue, Doing as _, ParameterValue, Statement};
use kit::idempotency::Claim;
use kit::outbox::{self, EventSpec};
use serde::Serialize;

use uuid::Uuid;

use crate::channel::Channel;
use crate::notices::Notice;
use crate::outbound::{EMAIL_REQUESTED, SMS_REQUESTED};

/// `notification.sent`, emitted with every notification stored or marked
/// as `sent` (aggregate `notifications`, subject = notification id). Data,
/// version 1:
///
/// ```json
/// {"version": 1, "notification_id": "<uuid>", "user_id": "<id>",
///  "channel": "log" | "webhook" | "email" | "sms", "event_id": "<uuid of the cause>" | null}
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

/// `notification.email_requested`, emitted with every email queued for
/// the bridge's SMTP sink (see [`crate::outbound`] for the data).
pub const EMAIL_REQUESTED_EVENT: EventSpec = request_spec(EMAIL_REQUESTED);

/// `notification.sms_requested`, emitted with every SMS queued for the
/// bridge's SMS sink.
pub const SMS_REQUESTED_EVENT: EventSpec = request_spec(SMS_REQUESTED);

const fn request_spec(kind: &'static str) -> EventSpec {
    EventSpec {
        source: "/notifications",
        kind,
        aggregate: "notifications",
        subject: "event_subject",
        version: 1,
        fields: &[
            ("notification_id", "changed.id"),
            ("message", "changed.sealed_message"),
        ],
        only_when: Some("changed.status = 'queued'"),
    }
}

/// A stored notification as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// Primary key.
    pub id: String,
    /// The recipient.
    pub user_id: String,
    /// `log`, `webhook`, `email` or `sms`.
    pub channel: String,
    /// The address an `email` or `sms` went to.
    pub recipient: Option<String>,
    /// What it is: `message`, `welcome`, `order`, `verify_email`,
    /// `password_reset` or `password_changed`.
    pub kind: String,
    /// The text (an account email's subject: its link never is stored).
    pub message: String,
    /// `queued`, `sent` or `failed`.
    pub status: String,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The event that caused it, if any.
    pub event_id: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// When its status last changed, RFC 3339 UTC.
    pub updated_at: String,
}

/// What to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// The recipient.
    pub user_id: &'a str,
    /// The channel.
    pub channel: Channel,
    /// The address, for `email` and `sms`.
    pub recipient: Option<&'a str>,
    /// The kind.
    pub kind: &'a str,
    /// The text kept.
    pub message: &'a str,
}

/// How it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Delivered: stored `sent` with `notification.sent`.
    Sent,
    /// Not delivered, with the reason.
    Failed(String),
    /// Handed to a sink: stored `queued` with its request event (of
    /// `request_type`) carrying `sealed`.
    Queued {
        /// [`EMAIL_REQUESTED`] or [`SMS_REQUESTED`].
        request_type: &'static str,
        /// The sealed message.
        sealed: String,
    },
}

/// The columns every statement returns, in the order [`from_row`] reads
/// them.
fn returning() -> String {
    format!(
        "RETURNING id::text AS id, user_id, channel, recipient, kind, message, status, error, \
         event_id::text AS event_id, {} AS created_at, {} AS updated_at",
        kit::rfc3339!("created_at"),
        kit::rfc3339!("updated_at")
    )
}

fn from_row(row: &[DbValue]) -> anyhow::Result<Notification> {
    Ok(Notification {
        id: db::column(row, 0, "id")?,
        user_id: db::column(row, 1, "user_id")?,
        channel: db::column(row, 2, "channel")?,
        recipient: db::column(row, 3, "recipient")?,
        kind: db::column(row, 4, "kind")?,
        message: db::column(row, 5, "message")?,
        status: db::column(row, 6, "status")?,
        error: db::column(row, 7, "error")?,
        event_id: db::column(row, 8, "event_id")?,
        created_at: db::column(row, 9, "created_at")?,
        updated_at: db::column(row, 10, "updated_at")?,
    })
}

/// The event a stored status announces.
fn spec_of(status: &Status) -> &'static EventSpec {
    match status {
        Status::Queued {
            request_type: SMS_REQUESTED,
            ..
        } => &SMS_REQUESTED_EVENT,
        Status::Queued { .. } => &EMAIL_REQUESTED_EVENT,
        Status::Sent | Status::Failed(_) => &NOTIFICATION_SENT,
    }
}

/// The `INSERT` of one notification, its parameters from `$first` on
/// (see [`insert_params`]); with `claimed`, only if the `claim` CTE took
/// the event.
fn insert_sql(first: usize, claimed: bool) -> String {
    let p: Vec<String> = (first..first + 9).map(|i| format!("${i}")).collect();
    let only = if claimed {
        " WHERE EXISTS (SELECT 1 FROM claim)"
    } else {
        ""
    };
    format!(
        "INSERT INTO notifications \
         (user_id, channel, recipient, kind, message, status, error, event_id) \
         SELECT {}::text, {}::text, {}::text, {}::text, {}::text, {}::text, {}::text, {}::text::uuid{only} \
         {}, 'notification/' || id::text AS event_subject, {}::text AS sealed_message",
        p[0],
        p[1],
        p[2],
        p[3],
        p[4],
        p[5],
        p[6],
        p[7],
        returning(),
        p[8],
    )
}

fn insert_params(record: &Record, status: &Status, event_id: Option<Uuid>) -> Vec<ParameterValue> {
    let (status, error, sealed) = match status {
        Status::Sent => ("sent", None, None),
        Status::Failed(why) => ("failed", Some(why.clone()), None),
        Status::Queued { sealed, .. } => ("queued", None, Some(sealed.clone())),
    };
    vec![
        db::text(record.user_id),
        db::text(record.channel.as_str()),
        db::text_or_null(record.recipient),
        db::text(record.kind),
        db::text(record.message),
        db::text(status),
        db::text_or_null(error),
        db::text_or_null(event_id),
        db::text_or_null(sealed),
    ]
}

/// Stores a notification with the event its status announces, in one
/// statement.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn insert(
    conn: &Connection,
    record: &Record,
    status: &Status,
) -> Result<Notification, ApiError> {
    let rows = outbox::query(
        conn,
        spec_of(status),
        &insert_sql(1, false),
        &insert_params(record, status, None),
    )
    .doing("storing a notification")?;
    db::decode_first(&rows, from_row)?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("INSERT returned no row")))
}

/// Stores the notification `event_id` causes, once per event for
/// `consumer`: the claim, the row and its event are one statement. `None`
/// when the event was processed before.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn insert_once(
    conn: &Connection,
    claim: Claim,
    record: &Record,
    status: &Status,
) -> Result<Option<Notification>, ApiError> {
    let params = claim.params(insert_params(record, status, Some(claim.event_id)));
    let rows = outbox::query_after(
        conn,
        spec_of(status),
        &[Claim::cte()],
        &insert_sql(Claim::PARAMS + 1, true),
        &params,
    )
    .doing("storing an event's notification")?;
    db::decode_first(&rows, from_row)
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
    let [input, claim] = Claim::batch_ctes("event_id uuid, user_id text, kind text, message text");
    let change = format!(
        "INSERT INTO notifications (user_id, channel, kind, message, status, event_id) \
         SELECT i.user_id, 'log', i.kind, i.message, 'sent', i.event_id \
         FROM input i JOIN claim USING (event_id) {}",
        returning()
    );
    let rows: Vec<serde_json::Value> = notices
        .iter()
        .map(|(event_id, notice)| {
            serde_json::json!({
                "event_id": event_id,
                "user_id": notice.user_id,
                "kind": notice.kind,
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

/// Marks a queued (or failed, then redriven) notification `sent`, with
/// [`NOTIFICATION_SENT`]. `None` when it was sent already (or never
/// queued): nothing changes.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn mark_sent(conn: &Connection, id: Uuid) -> Result<Option<Notification>, ApiError> {
    let change = format!(
        "UPDATE notifications SET status = 'sent', error = NULL \
         WHERE id = $1::text::uuid AND status IN ('queued', 'failed') {}",
        returning()
    );
    let rows = outbox::query(conn, &NOTIFICATION_SENT, &change, &[db::text(id)])
        .doing("marking a notification sent")?;
    db::decode_first(&rows, from_row)
}

/// Marks a queued notification `failed` with `error`. `None` when it is
/// not queued (sent already, or failed before): nothing changes.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn mark_failed(
    conn: &Connection,
    id: Uuid,
    error: &str,
) -> Result<Option<Notification>, ApiError> {
    let sql = Statement::new(format!(
        "UPDATE notifications SET status = 'failed', error = $2::text \
         WHERE id = $1::text::uuid AND status = 'queued' {}",
        returning()
    ));
    let rows = conn
        .rows(&sql, &[db::text(id), db::text(error)])
        .doing("marking a notification failed")?;
    db::decode_first(&rows, from_row)
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
        "SELECT id::text, user_id, channel, recipient, kind, message, status, error, \
         event_id::text, {}, {} \
         FROM notifications WHERE user_id = $1::text \
         ORDER BY created_at DESC, id DESC LIMIT $2::bigint",
        kit::rfc3339!("created_at"),
        kit::rfc3339!("updated_at")
    ));
    let params = [
        ParameterValue::Str(user_id.to_owned()),
        ParameterValue::Int64(i64::from(limit)),
    ];
    let rows = conn.rows(&sql, &params).doing("listing notifications")?;
    db::decode_all(&rows, from_row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_insert_returns_what_its_request_event_reads() {
        let sql = insert_sql(3, true);
        assert!(sql.contains("SELECT $3::text"), "{sql}");
        assert!(
            sql.contains("$10::text::uuid WHERE EXISTS (SELECT 1 FROM claim)"),
            "{sql}"
        );
        assert!(sql.ends_with("$11::text AS sealed_message"), "{sql}");
        let statement = EMAIL_REQUESTED_EVENT.wrap(&sql).sql();
        assert!(statement.contains("'notification.email_requested', changed.event_subject::text"));
        assert!(statement.contains("'message', changed.sealed_message"));
        assert!(statement.contains("WHERE changed.status = 'queued'"));
    }

    #[test]
    fn each_status_announces_its_event() {
        let queued = |request_type| Status::Queued {
            request_type,
            sealed: "s".into(),
        };
        assert_eq!(spec_of(&queued(SMS_REQUESTED)).kind, SMS_REQUESTED);
        assert_eq!(spec_of(&queued(EMAIL_REQUESTED)).kind, EMAIL_REQUESTED);
        assert_eq!(spec_of(&Status::Sent).kind, "notification.sent");
        let params = insert_params(
            &Record {
                user_id: "u",
                channel: Channel::Sms,
                recipient: Some("+14155550123"),
                kind: "message",
                message: "m",
            },
            &queued(SMS_REQUESTED),
            None,
        );
        assert_eq!(params.len(), 9);
        assert!(matches!(&params[5], ParameterValue::Str(s) if s == "queued"));
        assert!(matches!(&params[8], ParameterValue::Str(s) if s == "s"));
    }
}
