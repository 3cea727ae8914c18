//! Notices written to the log for events: a welcome on `user.registered`,
//! and what became of an order on `order.paid`, `order.payment_failed`
//! and `order.cancelled` (to the buyer, `data.user_id`).

use kit::cloudevent::CloudEvent;
use kit::{ApiError, FieldError};

/// A notice for a user, made from an event.
#[derive(Debug, PartialEq, Eq)]
pub struct Notice {
    /// The recipient.
    pub user_id: String,
    /// `welcome` or `order`.
    pub kind: &'static str,
    /// The text.
    pub message: String,
}

/// The notice an event means; `None` for types that have none.
///
/// # Errors
///
/// 422 when the event lacks what its notice needs.
pub fn notice(event: &CloudEvent) -> Result<Option<Notice>, ApiError> {
    if event.kind == "user.registered" {
        Notice::try_from(event).map(Some)
    } else {
        order_notice(event)
    }
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
        kind: "order",
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
                kind: "welcome",
                message: format!("Welcome, {email}!"),
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
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
        assert_eq!(welcome.kind, "welcome");
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
