//! How an email or an SMS leaves the function.
//!
//! A Spin function cannot speak SMTP, so with a sink configured (the
//! `smtp_host` or `sms_gateway_url` variable non-empty: the same variables
//! switch the bridge's sinks on) the notification is stored `queued` in
//! the same statement as its request event, and the bridge sends it and
//! reports back. Without one, the message is delivered to the component's
//! log, saying so, and stored `sent`: what older clients expect, and how a
//! developer without a mail server reads a verification link.
//!
//! Request events (source `/notifications`, subject `notification/<id>`,
//! aggregate `notifications`), version 1:
//!
//! ```json
//! notification.email_requested:
//!   {"version": 1, "notification_id": "<uuid>", "message": "<sealed {to, subject, text, html}>"}
//! notification.sms_requested:
//!   {"version": 1, "notification_id": "<uuid>", "message": "<sealed {to, text}>"}
//! ```
//!
//! The message is sealed with `message_sealing_key` (associated data: the
//! event type): addresses and bodies are personal data, and every event
//! is copied (the broker, the tracking sink, analytics).

use kit::config::{self, ConfigError};
use kit::{ApiError, FieldError};
use serde::Serialize;
use spinmesh_delivery::seal::{self, SEALING_KEY_VARIABLE};

use crate::channel::Channel;

/// Non-empty: the bridge's SMTP sink sends `email` notifications.
pub const SMTP_HOST: &str = "smtp_host";
/// Non-empty: the bridge's SMS sink posts `sms` notifications.
pub const SMS_GATEWAY_URL: &str = "sms_gateway_url";
/// The request event of an email.
pub const EMAIL_REQUESTED: &str = "notification.email_requested";
/// The request event of an SMS.
pub const SMS_REQUESTED: &str = "notification.sms_requested";

/// An email, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailMessage {
    /// The recipient's address.
    pub to: String,
    /// The `Subject` header.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// An SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsMessage {
    /// The E.164 number.
    pub to: String,
    /// The text.
    pub text: String,
}

/// A message for a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Over `email`.
    Email(EmailMessage),
    /// Over `sms`.
    Sms(SmsMessage),
}

impl Outbound {
    /// The type of its request event.
    pub fn request_type(&self) -> &'static str {
        match self {
            Self::Email(_) => EMAIL_REQUESTED,
            Self::Sms(_) => SMS_REQUESTED,
        }
    }

    /// The message as its request event carries it: JSON, sealed with
    /// `key` for the event type.
    ///
    /// # Errors
    ///
    /// 500 when there is no randomness for the nonce (a host fault).
    pub fn sealed(&self, key: &str) -> Result<String, ApiError> {
        let json = match self {
            Self::Email(m) => serde_json::to_vec(m),
            Self::Sms(m) => serde_json::to_vec(m),
        }
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("serializing a message: {e}")))?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("random nonce: {e}")))?;
        Ok(seal::seal(key, self.request_type(), &json, nonce))
    }

    /// What the log fallback prints: the headers that matter, then the
    /// text.
    pub fn log_text(&self) -> String {
        match self {
            Self::Email(m) => format!("To: {}\nSubject: {}\n\n{}", m.to, m.subject, m.text),
            Self::Sms(m) => format!("To: {}\n\n{}", m.to, m.text),
        }
    }
}

/// How a channel's messages leave now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Way {
    /// Queued for the bridge's sink, sealed with this key.
    Sink {
        /// `message_sealing_key`.
        sealing_key: String,
    },
    /// Delivered to the log, for this reason.
    Log {
        /// Said in the log line.
        why: &'static str,
    },
}

/// How `channel` (`email` or `sms`) delivers, by its variable.
///
/// # Errors
///
/// 500 when a variable cannot be read, or a sink is configured but
/// `message_sealing_key` is not.
pub fn way(channel: Channel) -> Result<Way, ApiError> {
    let (variable, why) = match channel {
        Channel::Email => (
            SMTP_HOST,
            "no SMTP server configured (smtp_host is empty): email delivered to the log",
        ),
        Channel::Sms => (
            SMS_GATEWAY_URL,
            "no SMS gateway configured (sms_gateway_url is empty): sms delivered to the log",
        ),
        Channel::Log | Channel::Webhook => return Ok(Way::Log { why: "" }),
    };
    match config::get(variable) {
        Ok(_) => Ok(Way::Sink {
            sealing_key: config::get(SEALING_KEY_VARIABLE)?,
        }),
        Err(ConfigError::Missing(_)) => Ok(Way::Log { why }),
        Err(err) => Err(err.into()),
    }
}

/// Prints a message delivered to the log.
pub fn log(id: &str, user_id: &str, why: &str, message: &Outbound) {
    eprintln!(
        "notification {id} to user {user_id}: {why}\n{}",
        message.log_text()
    );
}

/// The address a `to` names for `channel`, normalised.
///
/// # Errors
///
/// A field error on `to` when it is not an address of the channel's kind.
pub fn parse_to(channel: Channel, raw: &str) -> Result<String, FieldError> {
    match channel {
        Channel::Email => kit::domain::Email::parse(raw)
            .map(|e| e.as_str().to_owned())
            .map_err(|e| FieldError::new("to", e.replacen("email", "to", 1))),
        Channel::Sms => crate::phone::Phone::parse(raw)
            .map(|p| p.as_str().to_owned())
            .map_err(|e| FieldError::new("to", e)),
        Channel::Log | Channel::Webhook => Err(FieldError::new(
            "to",
            "to applies only to the email and sms channels",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_message_opens_for_its_event_type_only() {
        let email = Outbound::Email(EmailMessage {
            to: "a@b.co".into(),
            subject: "s".into(),
            text: "t".into(),
            html: "<p>t</p>".into(),
        });
        let sealed = email.sealed("key").unwrap();
        assert!(!sealed.contains("a@b.co"));
        let opened = seal::open("key", EMAIL_REQUESTED, &sealed).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&opened).unwrap();
        assert_eq!(json["to"], "a@b.co");
        assert_eq!(json["html"], "<p>t</p>");
        assert!(seal::open("key", SMS_REQUESTED, &sealed).is_err());
    }

    #[test]
    fn to_is_parsed_per_channel() {
        assert_eq!(
            parse_to(Channel::Email, " Ada@Example.com ").unwrap(),
            "ada@example.com"
        );
        assert_eq!(
            parse_to(Channel::Sms, "+14155550123").unwrap(),
            "+14155550123"
        );
        for (channel, raw) in [
            (Channel::Email, "+14155550123"),
            (Channel::Sms, "a@b.co"),
            (Channel::Log, "a@b.co"),
            (Channel::Webhook, "a@b.co"),
        ] {
            assert_eq!(
                parse_to(channel, raw).unwrap_err().field,
                "to",
                "{channel} {raw}"
            );
        }
    }

    #[test]
    fn the_log_text_shows_recipient_subject_and_text() {
        let sms = Outbound::Sms(SmsMessage {
            to: "+14155550123".into(),
            text: "hi".into(),
        });
        assert_eq!(sms.log_text(), "To: +14155550123\n\nhi");
        assert_eq!(sms.request_type(), SMS_REQUESTED);
    }
}
