//! `POST /analytics/events`: the bridge delivers every event here.
//!
//! Each event becomes one tracked event: `user.logged_in` counts as
//! `login`, `user.registered` as `register`, anything else under its
//! CloudEvents type. The user is `data.user_id`, else the `ce-subject`;
//! the time is `ce-time`, else now. Recording is idempotent on `ce-id`
//! (consumer `analytics`).
//!
//! The subscription takes batches (`batch` in `spin.toml`): a batch is
//! recorded in one statement, and is refused whole (422) if any event in
//! it names no user, so the bridge retries its events one by one and
//! dead-letters only that event.

use kit::cloudevent::{self, CloudEvent};
use kit::domain::Timestamp;
use kit::idempotency::{Claim, Outcome, Tally};
use kit::{ApiError, FieldError, db};
use spin_sdk::http::{Request, Response};

use crate::Params;
use crate::counters;
use crate::tracked::{Action, Tracked, UserId};

/// This consumer's name in `processed_events`.
pub const CONSUMER: &str = "analytics";

/// The action an event type is counted as.
pub fn action_for(event_type: &str) -> &str {
    match event_type {
        "user.logged_in" => "login",
        "user.registered" => "register",
        other => other,
    }
}

/// The tracked event a delivery stands for.
///
/// # Errors
///
/// 422 when the event names no user or its type is too long for an action.
pub fn tracked(event: &CloudEvent) -> Result<Tracked, ApiError> {
    let mut errors = Vec::new();
    let user_id = event
        .data_text("user_id")
        .or_else(|| event.subject.clone())
        .ok_or("the event has neither data.user_id nor ce-subject")
        .and_then(UserId::from_text)
        .map_err(|e| errors.push(FieldError::new("user_id", e)))
        .ok();
    let action = Action::from_text(action_for(&event.kind).to_owned())
        .map_err(|e| errors.push(FieldError::new("ce-type", e)))
        .ok();
    match (user_id, action) {
        (Some(user_id), Some(action)) => Ok(Tracked {
            user_id,
            action,
            occurred_at: event.time.unwrap_or_else(Timestamp::now),
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// Handles the delivery: 200 `{"status":"processed"}` or
/// `{"status":"duplicate"}` for one event; 200 `{"status":"processed",
/// "events":n,"recorded":k}` for a batch (`k` of them new).
///
/// # Errors
///
/// 401 on a bad signature, 400 on bad attributes, 422 when an event names
/// no user, 503/500 on database failure (the bridge retries).
pub fn handle(req: &Request, _: &Params) -> Result<Response, ApiError> {
    let events = cloudevent::receive_all(req)?;
    let conn = db::connect()?;
    if let [event] = events.as_slice() {
        let tracked = tracked(event)?;
        let claim = Claim {
            consumer: CONSUMER,
            event_id: event.id,
        };
        let new = counters::record_once(&conn, &claim, &tracked)?;
        return Outcome::from_claimed(new).respond();
    }
    let batch = events
        .iter()
        .map(|e| Ok((e.id, tracked(e)?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let recorded = counters::record_batch_once(&conn, CONSUMER, &batch)?;
    Tally {
        events: batch.len(),
        ignored: 0,
        applied: usize::try_from(recorded).unwrap_or_default(),
    }
    .respond()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, subject: Option<&str>, data: serde_json::Value) -> CloudEvent {
        CloudEvent {
            id: uuid::Uuid::nil(),
            kind: kind.into(),
            source: "/auth".into(),
            subject: subject.map(Into::into),
            time: None,
            data,
        }
    }

    #[test]
    fn user_events_map_to_short_actions() {
        let t = tracked(&event("user.logged_in", Some("s"), json!({"user_id": "u"}))).unwrap();
        assert_eq!((t.user_id.as_str(), t.action.as_str()), ("u", "login"));
        let t = tracked(&event("user.registered", None, json!({"user_id": 7}))).unwrap();
        assert_eq!((t.user_id.as_str(), t.action.as_str()), ("7", "register"));
    }

    #[test]
    fn other_events_count_under_their_type_and_subject() {
        let t = tracked(&event("order.paid", Some("o-1"), json!({"version": 1}))).unwrap();
        assert_eq!(
            (t.user_id.as_str(), t.action.as_str()),
            ("o-1", "order.paid")
        );
    }

    #[test]
    fn an_event_without_a_user_is_422() {
        let err = tracked(&event("x.y", None, json!(null))).unwrap_err();
        assert_eq!(err.status(), 422);
    }
}
