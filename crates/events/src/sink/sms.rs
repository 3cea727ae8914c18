//! The SMS sink: `notification.sms_requested` events become a POST to an
//! SMS gateway's webhook, the shape most gateways (or a small adapter in
//! front of one) accept:
//!
//! ```http
//! POST <sms_gateway_url>
//! Content-Type: application/json
//! Authorization: Bearer <sms_gateway_token>      (when the token is set)
//! Idempotency-Key: <notification id>
//!
//! {"to": "+14155550123", "text": "…", "reference": "<notification id>"}
//! ```
//!
//! A 2xx answer means sent. 408 and 429 (honouring `Retry-After`), 5xx,
//! and no answer at all are retried with the delivery policy's backoff;
//! any other 4xx is a refusal, dead-lettered at once. The ledger, the
//! reports and the duplicate window are [`super::ledger`]'s; the
//! `reference` and `Idempotency-Key` let a gateway drop a second copy.
//!
//! Configured by application variables: `sms_gateway_url` (empty: the
//! sink is off; `https`, or `http` to a loopback address),
//! `sms_gateway_token` (secret, optional), and `message_sealing_key`.

use std::time::Duration;

use anyhow::{Context, bail};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::ledger::{self, Claim, Ledger};
use super::{Sink, is_loopback};
use crate::dispatch::DeadLetter;
use crate::event::OutboxEvent;
use crate::outcome::{Attempt, parse_retry_after};
use spinmesh_config::database::Database;
use spinmesh_config::redact::redact;

/// The gateway's webhook URL; empty turns the sink off.
pub const SMS_GATEWAY_URL: &str = "sms_gateway_url";
/// The bearer token the gateway wants, if any (secret).
pub const SMS_GATEWAY_TOKEN: &str = "sms_gateway_token";

/// Where and how the sink posts.
#[derive(Clone, PartialEq, Eq)]
pub struct SmsConfig {
    /// The webhook.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
    /// Opens the request events' messages.
    pub sealing_key: String,
}

impl std::fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsConfig")
            .field("url", &redact(&self.url))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl SmsConfig {
    /// The configuration from the application variables `variable`
    /// resolves; `None` when `sms_gateway_url` is unset or empty.
    ///
    /// # Errors
    /// When the URL is not `https` (or `http` to loopback), or there is no
    /// sealing key.
    pub fn from_variables(
        variable: &dyn Fn(&str) -> anyhow::Result<Option<String>>,
    ) -> anyhow::Result<Option<Self>> {
        let url = variable(SMS_GATEWAY_URL)?
            .unwrap_or_default()
            .trim()
            .to_owned();
        if url.is_empty() {
            return Ok(None);
        }
        let parsed = reqwest::Url::parse(&url)
            .with_context(|| format!("{SMS_GATEWAY_URL} {} is not a URL", redact(&url)))?;
        let loopback = parsed.host_str().is_some_and(is_loopback);
        match parsed.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => bail!(
                "{SMS_GATEWAY_URL} must be https (or http to a loopback address), not {}",
                redact(&url)
            ),
        }
        let token = variable(SMS_GATEWAY_TOKEN)?.filter(|t| !t.trim().is_empty());
        let sealing_key = variable(spinmesh_delivery::seal::SEALING_KEY_VARIABLE)?
            .filter(|k| !k.is_empty())
            .with_context(|| {
                format!(
                    "{} is not set: the sink cannot open the messages",
                    spinmesh_delivery::seal::SEALING_KEY_VARIABLE
                )
            })?;
        Ok(Some(Self {
            url,
            token,
            sealing_key,
        }))
    }
}

/// What a request event's sealed message holds.
#[derive(Debug, Deserialize)]
struct SmsMessage {
    to: String,
    text: String,
}

/// What the gateway receives.
#[derive(Debug, Serialize)]
struct GatewayBody<'a> {
    to: &'a str,
    text: &'a str,
    reference: String,
}

/// Posts requested SMS to one gateway.
pub struct SmsSink {
    client: reqwest::Client,
    config: SmsConfig,
    ledger: Ledger,
}

impl SmsSink {
    /// The sink named `name` (its reports' source is `/bridge/<name>`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS backend).
    pub fn new(
        name: &str,
        config: &SmsConfig,
        database: &Database,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .build()
            .context("building the SMS gateway's HTTP client")?;
        Ok(Self {
            client,
            config: config.clone(),
            ledger: Ledger::new(database, name, "sms", &config.sealing_key),
        })
    }

    async fn deliver_one(&self, event: &OutboxEvent) -> Attempt {
        let request = match self.ledger.claim::<SmsMessage>(event).await {
            Claim::Send(request) => request,
            Claim::Settled(attempt) => return attempt,
        };
        let reference = request.notification_id.to_string();
        let body = GatewayBody {
            to: &request.message.to,
            text: &request.message.text,
            reference: reference.clone(),
        };
        let mut post = self
            .client
            .post(&self.config.url)
            .header("idempotency-key", &reference)
            .json(&body);
        if let Some(token) = &self.config.token {
            post = post.bearer_auth(token);
        }
        let answer = match post.send().await {
            Ok(answer) => answer,
            Err(err) => return Attempt::failed(format!("SMS gateway: {}", err.without_url())),
        };
        let status = answer.status().as_u16();
        if !answer.status().is_success() {
            let retry_after = answer
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let text = answer.text().await.unwrap_or_default();
            return outcome_of(status, retry_after, &text);
        }
        match self
            .ledger
            .record_sent(event, request.notification_id)
            .await
        {
            Ok(()) => Attempt::delivered(),
            Err(err) => Attempt::failed(format!("sent, but not recorded: {err:#}")),
        }
    }
}

impl Sink for SmsSink {
    fn deliver<'a>(&'a self, events: &'a [OutboxEvent]) -> BoxFuture<'a, Attempt> {
        ledger::in_order(events, |event| self.deliver_one(event)).boxed()
    }

    fn dead_lettered<'a>(
        &'a self,
        event: &'a OutboxEvent,
        why: &'a DeadLetter,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.ledger.record_failed(event, why).boxed()
    }
}

/// What a non-2xx answer means: 408, 429 and 5xx are retried, any other
/// status is a refusal.
fn outcome_of(status: u16, retry_after: Option<Duration>, body: &str) -> Attempt {
    let text: String = body.chars().take(512).collect();
    let error = format!("SMS gateway answered HTTP {status}: {text}");
    match status {
        408 | 429 | 500.. => Attempt::answered(503, retry_after, Some(error)),
        _ => Attempt::refused(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::DeliveryOutcome;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Option<SmsConfig>> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SmsConfig::from_variables(&|name| Ok(vars.get(name).cloned()))
    }

    #[test]
    fn urls_must_be_https_unless_on_loopback() {
        let key = ("message_sealing_key", "k");
        assert_eq!(config(&[key]).unwrap(), None);
        for ok in [
            "https://sms.example.com/send",
            "http://127.0.0.1:8080/sms",
            "http://localhost/sms",
        ] {
            assert!(
                config(&[("sms_gateway_url", ok), key]).unwrap().is_some(),
                "{ok}"
            );
        }
        for bad in ["http://sms.example.com/send", "ftp://x/y", "not a url"] {
            let err = format!(
                "{:#}",
                config(&[("sms_gateway_url", bad), key]).unwrap_err()
            );
            assert!(err.contains("sms_gateway_url"), "{bad}: {err}");
        }
        let err = config(&[("sms_gateway_url", "https://sms.example.com")]).unwrap_err();
        assert!(err.to_string().contains("message_sealing_key"), "{err}");
    }

    #[test]
    fn answers_map_to_outcomes() {
        let retry = |s| outcome_of(s, None, "").outcome();
        assert_eq!(retry(503), DeliveryOutcome::Retry { after: None });
        assert_eq!(retry(500), DeliveryOutcome::Retry { after: None });
        assert_eq!(retry(429), DeliveryOutcome::Retry { after: None });
        assert_eq!(retry(400), DeliveryOutcome::DeadLetter);
        assert_eq!(retry(401), DeliveryOutcome::DeadLetter);
        assert_eq!(retry(422), DeliveryOutcome::DeadLetter);
        let later = Some(Duration::from_secs(2));
        assert_eq!(
            outcome_of(429, later, "slow down").outcome(),
            DeliveryOutcome::Retry { after: later }
        );
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let shown = format!(
            "{:?}",
            config(&[
                ("sms_gateway_url", "https://sms.example.com"),
                ("sms_gateway_token", "t0ken"),
                ("message_sealing_key", "k"),
            ])
            .unwrap()
            .unwrap()
        );
        assert!(!shown.contains("t0ken"), "{shown}");
    }
}
