//! Author profiles: this service's own view of users, kept from the auth
//! function's `user.registered` and `user.updated` events and never read
//! from auth.
//!
//! The table is a projection. Every event carries the user's `revision`
//! (1 at registration, one more per change); a profile takes an event only
//! when its revision is newer than the one it holds. So applying is
//! idempotent (a redelivery changes nothing), order-proof (an older event
//! arriving late cannot roll a name back), and repeatable from scratch:
//! wipe the table, `bridge replay --subscription posts`, and every
//! profile comes back as it was. No `processed_events` claim is involved,
//! which is what lets a replay apply events again.

use kit::ApiError;
use kit::cloudevent::CloudEvent;
use kit::db::{self, Connection, Doing as _, Statement, text};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One user's state as an event states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// The user.
    pub user_id: Uuid,
    /// Their username, if they have one.
    pub username: Option<String>,
    /// The account's revision this state is.
    pub revision: i64,
}

/// What this consumer reads of `user.registered` and `user.updated`
/// (version 1). `revision` is absent from registrations written before
/// it existed; those are the account's first state.
#[derive(Debug, Deserialize)]
struct UserData {
    user_id: Uuid,
    username: Option<String>,
    revision: Option<i64>,
}

/// The profile an event states; `None` for types this consumer does not
/// act on.
///
/// # Errors
///
/// 422 when the data lacks `user_id`, or a `user.updated` lacks its
/// `revision` (the bridge dead-letters such an event).
pub fn profile(event: &CloudEvent) -> Result<Option<Profile>, ApiError> {
    let registered = match event.kind.as_str() {
        "user.registered" => true,
        "user.updated" => false,
        _ => return Ok(None),
    };
    let data: UserData = event.data_as()?;
    let revision = match (data.revision, registered) {
        (Some(r), _) if r >= 1 => r,
        (None, true) => 1,
        _ => {
            return Err(ApiError::invalid(
                "data.revision",
                "must be a whole number of at least 1",
            ));
        }
    };
    Ok(Some(Profile {
        user_id: data.user_id,
        username: data.username.filter(|u| !u.is_empty()),
        revision,
    }))
}

/// Applies `profiles` in one statement: per user the newest of them, and
/// only where it is newer than the stored profile. Returns how many
/// profiles changed.
///
/// # Errors
///
/// 503/500 on database failure (the bridge retries).
pub fn apply(conn: &Connection, profiles: &[Profile]) -> Result<i64, ApiError> {
    if profiles.is_empty() {
        return Ok(0);
    }
    let rows = serde_json::to_string(profiles)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("serializing profiles: {e}")))?;
    let sql = Statement::new("SELECT count(*)::bigint FROM applied")
        .with(
            "input AS (SELECT DISTINCT ON (x.user_id) x.user_id, x.username, x.revision \
             FROM json_to_recordset($1::text::json) AS x(user_id uuid, username text, revision bigint) \
             ORDER BY x.user_id, x.revision DESC)",
        )
        .with(
            "applied AS (INSERT INTO post_authors AS a (user_id, username, revision) \
             SELECT user_id, username, revision FROM input \
             ON CONFLICT (user_id) DO UPDATE \
               SET username = excluded.username, revision = excluded.revision, updated_at = now() \
               WHERE a.revision < excluded.revision \
             RETURNING a.user_id)",
        );
    let rows = conn
        .rows(&sql, &[text(rows)])
        .doing("applying author profiles")?;
    Ok(db::decode_first(&rows, |row| db::column::<i64>(row, 0, "count"))?.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: serde_json::Value) -> CloudEvent {
        CloudEvent {
            id: Uuid::nil(),
            kind: kind.to_owned(),
            source: "/auth".to_owned(),
            subject: None,
            time: None,
            data,
        }
    }

    #[test]
    fn registrations_without_a_revision_are_the_first_state() {
        let id = Uuid::from_u128(1);
        let p = profile(&event(
            "user.registered",
            serde_json::json!({"version": 1, "user_id": id, "email": "a@b.c", "username": "ada"}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            (p.user_id, p.username.as_deref(), p.revision),
            (id, Some("ada"), 1)
        );
    }

    #[test]
    fn updates_need_a_revision_and_others_are_ignored() {
        let id = Uuid::from_u128(1);
        let update = |data| profile(&event("user.updated", data));
        assert_eq!(
            update(serde_json::json!({"user_id": id, "username": "b", "revision": 3}))
                .unwrap()
                .unwrap()
                .revision,
            3
        );
        for bad in [
            serde_json::json!({"user_id": id, "username": "b"}),
            serde_json::json!({"user_id": id, "username": "b", "revision": 0}),
            serde_json::json!({"user_id": "nope", "username": "b", "revision": 2}),
        ] {
            assert_eq!(update(bad.clone()).unwrap_err().status(), 422, "{bad}");
        }
        assert_eq!(
            profile(&event("user.logged_in", serde_json::json!({}))).unwrap(),
            None
        );
    }
}
