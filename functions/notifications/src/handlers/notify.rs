//! `POST /notify`: send a notification and keep a record of it.
//!
//! `log` and `webhook` are sent now. `email` and `sms` are queued for the
//! bridge's sinks when those are configured (202 `queued`; the status
//! turns `sent` or `failed` when the sink reports), and delivered to the
//! log otherwise (200 `sent`, as older clients expect).

use kit::{ApiError, FieldError, db, json};
use serde::Deserialize;
use serde_json::{Value, json};
use spin_sdk::http::{Request, Response};

use crate::channel::{self, Channel};
use crate::outbound::{self, EmailMessage, Outbound, SmsMessage, Way};
use crate::recipients;
use crate::store::{self, Notification, Record, Status};
use crate::templates::{self, Template};

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
    #[serde(default)]
    to: Option<String>,
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
    /// The address given for `email` (normalised) or `sms` (E.164); `sms`
    /// always has one.
    pub to: Option<String>,
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

/// `to` for `channel`: required for `sms`, optional for `email`, refused
/// for the others.
fn parse_to(channel: Channel, raw: Option<&str>) -> Result<Option<String>, FieldError> {
    match (channel, raw) {
        (Channel::Sms, None) => Err(FieldError::new(
            "to",
            "to is required for sms: an E.164 phone number such as +14155550123",
        )),
        (_, None) => Ok(None),
        (channel, Some(raw)) => outbound::parse_to(channel, raw).map(Some),
    }
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
        let to = channel.and_then(|channel| {
            parse_to(channel, body.to.as_deref())
                .map_err(|e| errors.push(e))
                .ok()
        });
        match (user_id, channel, message, to) {
            (Some(user_id), Some(channel), Some(message), Some(to)) => Ok(Self {
                user_id,
                channel,
                message,
                to,
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// Handles the request: 200 `{"status":"sent","id","user_id","channel"}`
/// for a notification delivered now (a sent one stored with its
/// `notification.sent` event), 202 `{"status":"queued",...}` for one
/// handed to a sink (stored with its request event).
///
/// # Errors
///
/// 400/413/422 on bad input (422 on `to` when an email has no address:
/// none given and none known for the user); 502 when the webhook fails
/// (the failure is stored); 503/500 on database failure.
pub async fn handle(req: &Request) -> Result<Response, ApiError> {
    let new: NewNotification = json::parse::<NotifyBody>(req)?.try_into()?;
    match new.channel {
        Channel::Log | Channel::Webhook => send_now(new).await,
        Channel::Email | Channel::Sms => hand_over(new),
    }
}

/// `log` and `webhook`: sent by the function itself.
async fn send_now(new: NewNotification) -> Result<Response, ApiError> {
    let status = match channel::send(new.channel, &new.user_id, &new.message).await {
        Ok(()) => Status::Sent,
        Err(why) => Status::Failed(why),
    };
    let conn = db::connect()?;
    let record = Record {
        user_id: &new.user_id,
        channel: new.channel,
        recipient: None,
        kind: Template::Message.kind(),
        message: &new.message,
    };
    let stored = store::insert(&conn, &record, &status)?;
    if let Status::Failed(why) = status {
        eprintln!("notification {} failed: {why}", stored.id);
        return Err(ApiError::BadGateway(
            "the webhook did not accept the notification".into(),
        ));
    }
    answer(200, &stored)
}

/// `email` and `sms`: to the bridge's sink, or to the log.
fn hand_over(new: NewNotification) -> Result<Response, ApiError> {
    let conn = db::connect()?;
    let to = match &new.to {
        Some(to) => to.clone(),
        None => recipients::email_of(&conn, &new.user_id)?.ok_or_else(|| {
            ApiError::invalid(
                "to",
                "no email address is known for this user_id: give one in to",
            )
        })?,
    };
    let message = match new.channel {
        Channel::Sms => Outbound::Sms(SmsMessage {
            to: to.clone(),
            text: new.message.clone(),
        }),
        _ => {
            let rendered = templates::render(Template::Message, &[("message", &new.message)]);
            Outbound::Email(EmailMessage {
                to: to.clone(),
                subject: rendered.subject,
                text: rendered.text,
                html: rendered.html,
            })
        }
    };
    let record = Record {
        user_id: &new.user_id,
        channel: new.channel,
        recipient: Some(&to),
        kind: Template::Message.kind(),
        message: &new.message,
    };
    match outbound::way(new.channel)? {
        Way::Sink { sealing_key } => {
            let status = Status::Queued {
                request_type: message.request_type(),
                sealed: message.sealed(&sealing_key)?,
            };
            answer(202, &store::insert(&conn, &record, &status)?)
        }
        Way::Log { why } => {
            let stored = store::insert(&conn, &record, &Status::Sent)?;
            outbound::log(&stored.id, &stored.user_id, why, &message);
            answer(200, &stored)
        }
    }
}

/// The answer: the stored status, the id, the user and the channel.
fn answer(status: u16, stored: &Notification) -> Result<Response, ApiError> {
    json::respond(
        status,
        &json!({
            "status": stored.status,
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
        let n = parse(json!({"user_id": "u", "channel": "email", "message": "m"})).unwrap();
        assert_eq!((n.channel, n.to), (Channel::Email, None));
        let n = parse(json!({"user_id": "u", "channel": "email", "message": "m", "to": "A@B.co"}));
        assert_eq!(n.unwrap().to.as_deref(), Some("a@b.co"));
        let n =
            parse(json!({"user_id": "u", "channel": "sms", "message": "m", "to": "+14155550123"}));
        assert_eq!(n.unwrap().to.as_deref(), Some("+14155550123"));
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
                json!({"user_id": "u", "channel": "fax", "message": "m"}),
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
            (
                json!({"user_id": "u", "channel": "sms", "message": "m"}),
                "to",
                "sms without a number",
            ),
            (
                json!({"user_id": "u", "channel": "sms", "message": "m", "to": "0155"}),
                "to",
                "not E.164",
            ),
            (
                json!({"user_id": "u", "channel": "email", "message": "m", "to": "nobody"}),
                "to",
                "not an address",
            ),
            (
                json!({"user_id": "u", "channel": "log", "message": "m", "to": "a@b.co"}),
                "to",
                "to on a channel without addresses",
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
