//! `POST /notifications/events`: events the bridge delivers.
//!
//! `user.registered` stores (and logs) a welcome notification for
//! `data.user_id`, once per event id (consumer `notifications`); the claim
//! and the insert are one statement. Other types are acknowledged and
//! ignored.

use kit::cloudevent::{self, CloudEvent};
use kit::idempotency::{Claim, Outcome};
use kit::{ApiError, FieldError, db};
use spin_sdk::http::{Request, Response};

use crate::channel;
use crate::store;

/// This consumer's name in `processed_events`.
pub const CONSUMER: &str = "notifications";

/// A welcome for a new account.
#[derive(Debug, PartialEq, Eq)]
pub struct Welcome {
    /// The new user.
    pub user_id: String,
    /// The text.
    pub message: String,
}

impl TryFrom<&CloudEvent> for Welcome {
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

/// Handles the delivery: 200 `{"status":"processed"|"duplicate"|"ignored"}`.
///
/// # Errors
///
/// 401 on a bad signature, 400 on bad attributes, 422 on a
/// `user.registered` without `user_id`/`email`, 503/500 on database failure
/// (the bridge retries).
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let event = cloudevent::receive(req)?;
    if event.kind != "user.registered" {
        return Outcome::Ignored.respond();
    }
    let welcome = Welcome::try_from(&event)?;
    let claim = Claim {
        consumer: CONSUMER,
        event_id: event.id,
    };
    let conn = db::connect()?;
    let stored = store::insert_once(&conn, &claim, &welcome.user_id, &welcome.message)?;
    if stored.is_some() {
        channel::log(&welcome.user_id, &welcome.message);
    }
    Outcome::from_claimed(stored.is_some()).respond()
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
        let welcome = Welcome::try_from(&event).unwrap();
        assert_eq!(welcome.user_id, "u1");
        assert_eq!(welcome.message, "Welcome, a@b.co!");
    }

    #[test]
    fn a_registration_without_user_or_email_is_422() {
        for data in [
            json!({"email": "a@b.co"}),
            json!({"user_id": "u"}),
            json!(null),
        ] {
            let err = Welcome::try_from(&registered(data.clone())).unwrap_err();
            assert_eq!(err.status(), 422, "{data}");
        }
    }
}
