//! The ways a notification reaches its user.

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
}

impl Channel {
    /// Parses `log` or `webhook`.
    ///
    /// # Errors
    ///
    /// A message for the client otherwise.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match raw {
            "log" => Ok(Self::Log),
            "webhook" => Ok(Self::Webhook),
            _ => Err("channel must be \"log\" or \"webhook\""),
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::Webhook => "webhook",
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

/// Sends `message` for `user_id` over `channel`.
///
/// # Errors
///
/// Why the webhook did not take it (not configured, unreachable, non-2xx);
/// stored with the failed notification, never shown to the caller.
pub async fn send(channel: Channel, user_id: &str, message: &str) -> Result<(), String> {
    match channel {
        Channel::Log => {
            log(user_id, message);
            Ok(())
        }
        Channel::Webhook => post_webhook(user_id, message).await,
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
