//! `POST /notify`: send a notification now and keep a record of it.

use kit::{ApiError, FieldError, db, json};
use serde::Deserialize;
use serde_json::{Value, json};
use spin_sdk::http::{Request, Response};

use crate::channel::{self, Channel};
use crate::store::{self, Status};

/// Longest accepted message, in characters.
const MAX_MESSAGE_CHARS: usize = 2000;
/// Longest accepted user id, in characters.
const MAX_USER_ID_CHARS: usize = 128;

/// The request body as sent.
#[derive(Debug, Deserialize)]
pub struct NotifyBody {
    user_id: Value,
    channel: String,
    message: String,
}

/// A notification whose every field is valid.
#[derive(Debug, PartialEq, Eq)]
pub struct NewNotification {
    /// The recipient: a string, or a number kept as its JSON text.
    pub user_id: String,
    /// How to reach them.
    pub channel: Channel,
    /// 1 to 2000 characters.
    pub message: String,
}

fn parse_user_id(raw: &Value) -> Result<String, &'static str> {
    let text = match raw {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return Err("user_id must be a string or a number"),
    };
    if text.trim().is_empty() {
        return Err("user_id must not be empty");
    }
    if text.chars().count() > MAX_USER_ID_CHARS {
        return Err("user_id must be at most 128 characters");
    }
    Ok(text)
}

fn parse_message(raw: String) -> Result<String, &'static str> {
    let len = raw.chars().count();
    if raw.trim().is_empty() || len > MAX_MESSAGE_CHARS {
        return Err("message must be 1 to 2000 characters and not blank");
    }
    Ok(raw)
}

impl TryFrom<NotifyBody> for NewNotification {
    type Error = ApiError;

    /// Validates every field and reports all failures at once (422).
    fn try_from(body: NotifyBody) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let user_id = parse_user_id(&body.user_id)
            .map_err(|e| errors.push(FieldError::new("user_id", e)))
            .ok();
        let channel = Channel::parse(&body.channel)
            .map_err(|e| errors.push(FieldError::new("channel", e)))
            .ok();
        let message = parse_message(body.message)
            .map_err(|e| errors.push(FieldError::new("message", e)))
            .ok();
        match (user_id, channel, message) {
            (Some(user_id), Some(channel), Some(message)) => Ok(Self {
                user_id,
                channel,
                message,
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// Handles the request: sends, stores the outcome (a sent one with its
/// `notification.sent` event), then answers 200
/// `{"status":"sent","id":...,"user_id":...,"channel":...}`.
///
/// # Errors
///
/// 400/413/422 on bad input; 502 when the webhook fails (the failure is
/// stored); 503/500 on database failure.
pub async fn handle(req: &Request) -> Result<Response, ApiError> {
    let new: NewNotification = json::parse::<NotifyBody>(req)?.try_into()?;
    let status = match channel::send(new.channel, &new.user_id, &new.message).await {
        Ok(()) => Status::Sent,
        Err(why) => Status::Failed(why),
    };
    let conn = db::connect()?;
    let stored = store::insert(&conn, &new.user_id, new.channel, &new.message, &status)?;
    if let Status::Failed(why) = status {
        eprintln!("notification {} failed: {why}", stored.id);
        return Err(ApiError::BadGateway(
            "the webhook did not accept the notification".into(),
        ));
    }
    json::respond(
        200,
        &json!({
            "status": "sent",
            "id": stored.id,
            "user_id": stored.user_id,
            "channel": stored.channel,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: Value) -> Result<NewNotification, ApiError> {
        serde_json::from_value::<NotifyBody>(body)
            .unwrap()
            .try_into()
    }

    #[test]
    fn valid_notifications_parse() {
        let n = parse(json!({"user_id": 5, "channel": "log", "message": "hi"})).unwrap();
        assert_eq!((n.user_id.as_str(), n.channel), ("5", Channel::Log));
        let n = parse(json!({"user_id": "u", "channel": "webhook", "message": "x".repeat(2000)}));
        assert!(n.is_ok());
    }

    #[test]
    fn invalid_fields_are_422_and_named() {
        let cases = [
            (
                json!({"user_id": "", "channel": "log", "message": "m"}),
                "user_id",
                "empty user",
            ),
            (
                json!({"user_id": [], "channel": "log", "message": "m"}),
                "user_id",
                "array user",
            ),
            (
                json!({"user_id": "u", "channel": "sms", "message": "m"}),
                "channel",
                "unknown channel",
            ),
            (
                json!({"user_id": "u", "channel": "log", "message": ""}),
                "message",
                "empty message",
            ),
            (
                json!({"user_id": "u", "channel": "log", "message": "x".repeat(2001)}),
                "message",
                "long",
            ),
        ];
        for (body, field, why) in cases {
            let Err(ApiError::Validation(errors)) = parse(body) else {
                panic!("{why}: expected 422");
            };
            assert_eq!(errors[0].field, field, "{why}");
        }
    }
}
