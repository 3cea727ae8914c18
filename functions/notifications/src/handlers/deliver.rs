//! `POST /notifications/events`: events the bridge delivers.
//!
//! `user.registered` stores (and logs) a welcome notification for
//! `data.user_id`; `order.paid`, `order.payment_failed` and
//! `order.cancelled` tell the buyer (`data.user_id`) what became of the
//! order. Each is stored once per event id (consumer `notifications`); the
//! claim and the insert are one statement. Other types are acknowledged
//! and ignored.

use kit::cloudevent::{self, CloudEvent};
use kit::idempotency::Tally;
use kit::{ApiError, FieldError, db};
use spin_sdk::http::{Request, Response};

use crate::channel;
use crate::store;

/// This consumer's name in `processed_events`.
pub const CONSUMER: &str = "notifications";

/// A notice for a user, made from an event.
#[derive(Debug, PartialEq, Eq)]
pub struct Notice {
    /// The recipient.
    pub user_id: String,
    /// The text.
    pub message: String,
}

/// The notice an order event means for its buyer: `None` for types this
/// consumer does not act on.
///
/// # Errors
///
/// 422 when the data lacks `user_id` or `order_id`.
pub fn order_notice(event: &CloudEvent) -> Result<Option<Notice>, ApiError> {
    let text = match event.kind.as_str() {
        "order.paid" => "has been paid. Thank you!",
        "order.payment_failed" => "could not be paid",
        "order.cancelled" => "has been cancelled",
        _ => return Ok(None),
    };
    let user_id = event.data_text("user_id");
    let order_id = event.data_text("order_id");
    let (Some(user_id), Some(order_id)) = (user_id, order_id) else {
        return Err(ApiError::invalid(
            "data",
            "data.user_id and data.order_id are required",
        ));
    };
    let why = match (event.kind.as_str(), event.data_text("reason")) {
        ("order.paid", _) | (_, None) => String::new(),
        (_, Some(reason)) => format!(" ({reason})"),
    };
    Ok(Some(Notice {
        user_id,
        message: format!("Your order {order_id} {text}{why}"),
    }))
}

impl TryFrom<&CloudEvent> for Notice {
    type Error = ApiError;

    /// Reads `user.registered` data (version 1: `user_id`, `email`).
    fn try_from(event: &CloudEvent) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let user_id = event.data_text("user_id");
        if user_id.is_none() {
            errors.push(FieldError::new("user_id", "data.user_id is required"));
        }
        let email = event.data_text("email");
        if email.is_none() {
            errors.push(FieldError::new("email", "data.email is required"));
        }
        match (user_id, email) {
            (Some(user_id), Some(email)) => Ok(Self {
                user_id,
                message: format!("Welcome, {email}!"),
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// The notice an event means; `None` for types this consumer does not
/// act on.
///
/// # Errors
///
/// 422 when the event lacks what its notice needs.
fn notice(event: &CloudEvent) -> Result<Option<Notice>, ApiError> {
    if event.kind == "user.registered" {
        Notice::try_from(event).map(Some)
    } else {
        order_notice(event)
    }
}

/// Handles the delivery: 200 `{"status":"processed"|"duplicate"|"ignored"}`
/// for one event, `{"status":"processed","events":n,"recorded":k}` for a
/// batch (stored in one statement).
///
/// # Errors
///
/// 401 on a bad signature, 400 on bad attributes, 422 on an event without
/// what its notice needs (a batch holding one is refused whole, so the
/// bridge delivers its events one by one), 503/500 on database failure
/// (the bridge retries).
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let events = cloudevent::receive_all(req)?;
    let mut notices = Vec::with_capacity(events.len());
    for event in &events {
        if let Some(notice) = notice(event)? {
            notices.push((event.id, notice));
        }
    }
    let mut tally = Tally {
        events: events.len(),
        ignored: events.len() - notices.len(),
        applied: 0,
    };
    if notices.is_empty() {
        return tally.respond();
    }
    let conn = db::connect()?;
    let stored = store::insert_all_once(&conn, CONSUMER, &notices)?;
    for notification in &stored {
        channel::log(&notification.user_id, &notification.message);
    }
    tally.applied = stored.len();
    tally.respond()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registered(data: serde_json::Value) -> CloudEvent {
        CloudEvent {
            id: uuid::Uuid::nil(),
            kind: "user.registered".into(),
            source: "/auth".into(),
            subject: None,
            time: None,
            data,
        }
    }

    #[test]
    fn a_registration_becomes_a_welcome() {
        let event = registered(json!({"version": 1, "user_id": "u1", "email": "a@b.co"}));
        let welcome = Notice::try_from(&event).unwrap();
        assert_eq!(welcome.user_id, "u1");
        assert_eq!(welcome.message, "Welcome, a@b.co!");
    }

    #[test]
    fn order_events_become_notices_for_the_buyer() {
        let event = |kind: &str, data| CloudEvent {
            kind: kind.into(),
            ..registered(data)
        };
        let paid = order_notice(&event(
            "order.paid",
            json!({"user_id": "u1", "order_id": "o1"}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(paid.user_id, "u1");
        assert_eq!(paid.message, "Your order o1 has been paid. Thank you!");
        let failed = order_notice(&event(
            "order.payment_failed",
            json!({"user_id": "u1", "order_id": "o1", "reason": "card_declined"}),
        ))
        .unwrap()
        .unwrap();
        assert!(
            failed
                .message
                .ends_with("could not be paid (card_declined)"),
            "{failed:?}"
        );
        assert!(
            order_notice(&event("order.created", json!({})))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            order_notice(&event("order.cancelled", json!({"user_id": "u1"})))
                .unwrap_err()
                .status(),
            422
        );
    }

    #[test]
    fn a_registration_without_user_or_email_is_422() {
        for data in [
            json!({"email": "a@b.co"}),
            json!({"user_id": "u"}),
            json!(null),
        ] {
            let err = Notice::try_from(&registered(data.clone())).unwrap_err();
            assert_eq!(err.status(), 422, "{data}");
        }
    }
}
