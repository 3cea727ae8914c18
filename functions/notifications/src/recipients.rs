//! Who can be reached at which email address: a projection of the auth
//! function's events (`user.registered`, `user.updated` when it carries
//! an `email`, and the account emails' events), so `POST /notify` over
//! `email` with only a `user_id` (what older clients send) finds the
//! address.
//!
//! Each address is kept with the time of the event that set it, and an
//! event older than the one kept changes nothing: applying an event again,
//! or out of order, leaves the newest address. That makes the projection
//! idempotent without a claim, and `bridge replay --subscription
//! notifications` rebuilds it.

use kit::ApiError;
use kit::cloudevent::CloudEvent;
use kit::db::{self, Connection, Doing as _, Statement};
use kit::domain::{Email, Timestamp};

/// One address an event tells.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sighting {
    /// The account.
    pub user_id: String,
    /// Its address, normalised.
    pub email: String,
    /// When the event happened.
    pub at: String,
}

/// The address `event` tells, if it tells one: a `user_id` and a valid
/// `email` in the data of an auth event.
pub fn sighting(event: &CloudEvent) -> Option<Sighting> {
    if !event.kind.starts_with("user.") {
        return None;
    }
    let user_id = event.data_text("user_id")?;
    let email = Email::parse(&event.data_text("email")?).ok()?;
    Some(Sighting {
        user_id,
        email: email.as_str().to_owned(),
        at: event.time.unwrap_or_else(Timestamp::now).to_rfc3339(),
    })
}

/// Keeps the newest address of each account in `sightings`, in one
/// statement; returns how many rows changed.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn remember(conn: &Connection, sightings: &[Sighting]) -> Result<usize, ApiError> {
    if sightings.is_empty() {
        return Ok(0);
    }
    let rows = serde_json::to_string(sightings)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("serializing addresses: {e}")))?;
    let sql = Statement::new(
        "INSERT INTO notification_recipients (user_id, email, updated_at) \
         SELECT DISTINCT ON (x.user_id) x.user_id, x.email, x.at::timestamptz \
         FROM json_to_recordset($1::text::json) AS x(user_id text, email text, at text) \
         ORDER BY x.user_id, x.at::timestamptz DESC \
         ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, updated_at = EXCLUDED.updated_at \
         WHERE notification_recipients.updated_at <= EXCLUDED.updated_at \
         RETURNING user_id",
    );
    let changed = conn
        .rows(&sql, &[db::text(rows)])
        .doing("remembering addresses")?;
    Ok(changed.len())
}

/// The address kept for `user_id`, if any.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn email_of(conn: &Connection, user_id: &str) -> Result<Option<String>, ApiError> {
    let sql = Statement::new("SELECT email FROM notification_recipients WHERE user_id = $1::text");
    let rows = conn
        .rows(&sql, &[db::text(user_id)])
        .doing("looking up an address")?;
    db::decode_first(&rows, |row| db::column(row, 0, "email"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, data: serde_json::Value) -> CloudEvent {
        CloudEvent {
            id: uuid::Uuid::nil(),
            kind: kind.into(),
            source: "/auth".into(),
            subject: None,
            time: Some(Timestamp::parse_rfc3339("2026-12-04T10:00:00Z").unwrap()),
            data,
        }
    }

    #[test]
    fn auth_events_with_an_address_are_sightings() {
        let seen = sighting(&event(
            "user.registered",
            json!({"user_id": "u1", "email": "Ada@Example.com"}),
        ))
        .unwrap();
        assert_eq!(seen.email, "ada@example.com");
        assert_eq!(seen.at, "2026-12-04T10:00:00.000000Z");
        assert!(
            sighting(&event(
                "user.updated",
                json!({"user_id": "u1", "username": "ada"})
            ))
            .is_none()
        );
        assert!(
            sighting(&event(
                "user.registered",
                json!({"user_id": "u1", "email": "nope"})
            ))
            .is_none()
        );
        assert!(
            sighting(&event(
                "order.paid",
                json!({"user_id": "u1", "email": "a@b.co"})
            ))
            .is_none()
        );
    }
}
