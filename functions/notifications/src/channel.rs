//! The ways a notification reaches its user.
//!
//! `log` and `webhook` are delivered by the function itself, at once.
//! `email` and `sms` are delivered by the bridge's sinks (Spin functions
//! cannot speak SMTP), or to the log when no sink is configured (see
//! [`crate::outbound`]).

use std::fmt;

use kit::config;
use serde::Serialize;
use spin_sdk::http::{Method, Request, Response};

/// A delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// A line on the component's stderr.
    Log,
    /// A JSON `POST` to the `notification_webhook_url` variable.
    Webhook,
    /// An email, through the bridge's SMTP sink.
    Email,
    /// A text message, through the bridge's SMS gateway sink.
    Sms,
}

impl Channel {
    /// Parses `log`, `webhook`, `email` or `sms`.
    ///
    /// # Errors
    ///
    /// A message for the client otherwise.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match raw {
            "log" => Ok(Self::Log),
            "webhook" => Ok(Self::Webhook),
            "email" => Ok(Self::Email),
            "sms" => Ok(Self::Sms),
            _ => Err("channel must be \"log\", \"webhook\", \"email\" or \"sms\""),
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Webhook => "webhook",
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the webhook receives.
#[derive(Debug, Serialize)]
struct WebhookBody<'a> {
    user_id: &'a str,
    channel: Channel,
    message: &'a str,
}

/// Writes the log line for a notification.
pub fn log(user_id: &str, message: &str) {
    eprintln!("notification to user {user_id}: {message}");
}

/// Sends `message` for `user_id` over `channel`, which must be `log` or
/// `webhook` (the others go through [`crate::outbound`]).
///
/// # Errors
///
/// Why the webhook did not take it (not configured, unreachable, non-2xx);
/// stored with the failed notification, never shown to the caller.
pub async fn send(channel: Channel, user_id: &str, message: &str) -> Result<(), String> {
    match channel {
        Channel::Webhook => post_webhook(user_id, message).await,
        Channel::Log | Channel::Email | Channel::Sms => {
            log(user_id, message);
            Ok(())
        }
    }
}

async fn post_webhook(user_id: &str, message: &str) -> Result<(), String> {
    let url = config::get(config::NOTIFICATION_WEBHOOK_URL).map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&WebhookBody {
        user_id,
        channel: Channel::Webhook,
        message,
    })
    .map_err(|e| format!("serializing the webhook body: {e}"))?;
    let request = Request::builder()
        .method(Method::Post)
        .uri(url)
        .header("content-type", "application/json")
        .body(body)
        .build();
    let response: Response = spin_sdk::http::send(request)
        .await
        .map_err(|e| format!("webhook request failed: {e}"))?;
    let status = *response.status();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("webhook answered {status}"))
    }
}
