//! What the email and SMS sinks share: reading a notification request
//! event, the ledger of what they handed over, and their reports back to
//! the notifications function.
//!
//! A request event (`notification.email_requested`,
//! `notification.sms_requested`; source `/notifications`, subject
//! `notification/<id>`) carries, version 1:
//!
//! ```json
//! {"version": 1, "notification_id": "<uuid>", "message": "<sealed JSON>"}
//! ```
//!
//! `message` is sealed ([`spinmesh_delivery::seal`], associated data = the
//! event type) because addresses and bodies are personal data and every
//! event is copied (the broker, the tracking sink, analytics).
//!
//! **Exactly once in effect.** Before sending, a sink looks its event up in
//! `sink_deliveries`; after sending, it records the send *and* writes its
//! report (`notification.delivered`) in one statement. The one window left
//! is a crash (or a database outage outlasting [`RECORD_PATIENCE`]) after
//! the send and before the record: the event is then delivered again and
//! sent again, which is why the email's `Message-ID` derives from the
//! notification id (receivers can drop the second copy) and the SMS
//! gateway gets the notification id as its `reference`.
//!
//! Reports (source `/bridge/<sink>`, subject `notification/<id>`,
//! aggregate `notifications`), version 1:
//!
//! ```json
//! {"version": 1, "notification_id": "<uuid>", "channel": "email" | "sms", "status": "sent"}
//! {"version": 1, "notification_id": "<uuid>", "channel": "email" | "sms", "status": "failed",
//!  "error": "<sealed text, associated data notification.delivery_failed>"}
//! ```
//!
//! The error is sealed too: an SMTP server's refusal usually quotes the
//! recipient's address.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::de::DeserializeOwned;
use spinmesh_delivery::seal;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::dispatch::DeadLetter;
use crate::event::OutboxEvent;
use crate::outbox::LazyClient;
use crate::outcome::{Attempt, DeliveryOutcome};
use spinmesh_config::database::Database;

/// The report of a sent notification.
pub const DELIVERED: &str = "notification.delivered";
/// The report of a notification the delivery policy gave up on.
pub const DELIVERY_FAILED: &str = "notification.delivery_failed";

/// How long a sink keeps trying to record a send it made before it gives
/// the attempt up (and the event, delivered again, is sent again).
pub const RECORD_PATIENCE: Duration = Duration::from_secs(30);

/// A request event, opened.
#[derive(Debug)]
pub struct Request<T> {
    /// The notification it asks to deliver.
    pub notification_id: Uuid,
    /// The opened message.
    pub message: T,
}

/// The request event's data as written.
#[derive(serde::Deserialize)]
struct RequestData {
    notification_id: Uuid,
    message: String,
}

impl<T: DeserializeOwned> Request<T> {
    /// Reads and opens `event`'s data with `key`.
    ///
    /// # Errors
    /// When the data is not a version 1 request or the message does not
    /// open (wrong key, altered) or parse: nothing will ever send it.
    pub fn open(event: &OutboxEvent, key: &str) -> anyhow::Result<Self> {
        let data: RequestData =
            serde_json::from_str(&event.data).context("the request's data is not version 1")?;
        let plain = seal::open(key, &event.event_type, &data.message)
            .context("the message does not open with message_sealing_key")?;
        let message = serde_json::from_slice(&plain).context("the opened message")?;
        Ok(Self {
            notification_id: data.notification_id,
            message,
        })
    }
}

/// What a sink does with a request event: send it, or settle it without
/// sending.
pub enum Claim<T> {
    /// Not sent yet: send it, then [`Ledger::record_sent`].
    Send(Request<T>),
    /// Sent already (delivered), never sendable (refused: it does not
    /// open), or unknown for now (failed: the ledger cannot be read).
    Settled(Attempt),
}

/// Hands `events` to `one` in order and stops at the first that is not
/// delivered: the ones before it are in the ledger, so the retry skips
/// them.
pub async fn in_order<'a, F, Fut>(events: &'a [OutboxEvent], mut one: F) -> Attempt
where
    F: FnMut(&'a OutboxEvent) -> Fut,
    Fut: Future<Output = Attempt>,
{
    for event in events {
        let attempt = one(event).await;
        if attempt.outcome() != DeliveryOutcome::Delivered {
            return attempt;
        }
    }
    Attempt::delivered()
}

/// One sink's record in `sink_deliveries`, and its reports.
pub struct Ledger {
    sink: String,
    channel: &'static str,
    sealing_key: String,
    client: Mutex<LazyClient>,
}

impl Ledger {
    /// The ledger of sink `sink` (its name in the manifest, which also
    /// makes its reports' source `/bridge/<sink>`) for `channel`.
    pub fn new(database: &Database, sink: &str, channel: &'static str, sealing_key: &str) -> Self {
        Self {
            sink: sink.to_owned(),
            channel,
            sealing_key: sealing_key.to_owned(),
            client: Mutex::new(LazyClient::new(database.clone())),
        }
    }

    /// Opens `event` and looks it up: what to do with it.
    pub async fn claim<T: DeserializeOwned>(&self, event: &OutboxEvent) -> Claim<T> {
        let request = match Request::open(event, &self.sealing_key) {
            Ok(request) => request,
            Err(err) => return Claim::Settled(Attempt::refused(format!("{err:#}"))),
        };
        match self.already_sent(event.id).await {
            Ok(false) => Claim::Send(request),
            Ok(true) => Claim::Settled(Attempt::delivered()),
            Err(err) => Claim::Settled(Attempt::failed(format!("{err:#}"))),
        }
    }

    /// Whether this sink has sent `event` already.
    ///
    /// # Errors
    /// When the database cannot be asked.
    pub async fn already_sent(&self, event: Uuid) -> anyhow::Result<bool> {
        let sink = self.sink.as_str();
        self.client
            .lock()
            .await
            .run(async |client| {
                let row = client
                    .query_opt(
                        "SELECT 1 FROM sink_deliveries \
                         WHERE sink = $1 AND event_id = $2 AND outcome = 'sent'",
                        &[&sink, &event],
                    )
                    .await
                    .context("looking up a delivery")?;
                Ok(row.is_some())
            })
            .await
    }

    /// Records that `event` (asking for `notification`) was sent, with its
    /// `notification.delivered` report, in one statement; a send recorded
    /// before writes nothing. Keeps trying for [`RECORD_PATIENCE`]: the
    /// message is out, so giving up means sending it again.
    ///
    /// # Errors
    /// When the database stayed unusable that long.
    pub async fn record_sent(&self, event: &OutboxEvent, notification: Uuid) -> anyhow::Result<()> {
        let data = self.report(notification, "sent", None);
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            match self.record(event, "sent", DELIVERED, &data).await {
                Ok(()) => return Ok(()),
                Err(err) if started.elapsed() < RECORD_PATIENCE => {
                    tracing::warn!(sink = %self.sink, event = %event.id, error = %format!("{err:#}"), "sent, but the send is not recorded yet; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Records that the delivery policy gave `event` up (`why`), with its
    /// `notification.delivery_failed` report, in one statement; the first
    /// failure of an event is the one reported.
    ///
    /// # Errors
    /// When the database fails (the pipeline tries again).
    pub async fn record_failed(&self, event: &OutboxEvent, why: &DeadLetter) -> anyhow::Result<()> {
        let notification = serde_json::from_str::<serde_json::Value>(&event.data)
            .ok()
            .and_then(|d| d["notification_id"].as_str()?.parse::<Uuid>().ok());
        let Some(notification) = notification else {
            // Not a request this sink could read: no notification to fail.
            return Ok(());
        };
        let error = seal::seal(
            &self.sealing_key,
            DELIVERY_FAILED,
            why.error.as_bytes(),
            nonce()?,
        );
        let data = self.report(notification, "failed", Some(error));
        self.record(event, "failed", DELIVERY_FAILED, &data).await
    }

    /// The report's data.
    fn report(&self, notification: Uuid, status: &str, error: Option<String>) -> serde_json::Value {
        let mut data = serde_json::json!({
            "version": 1,
            "notification_id": notification,
            "channel": self.channel,
            "status": status,
        });
        if let Some(error) = error {
            data["error"] = serde_json::Value::String(error);
        }
        data
    }

    /// The ledger row and the report, in one statement. `sent` replaces a
    /// `failed` (a redriven request that went out after all); nothing
    /// replaces `sent`, and a second `failed` changes nothing.
    async fn record(
        &self,
        event: &OutboxEvent,
        outcome: &str,
        report: &str,
        data: &serde_json::Value,
    ) -> anyhow::Result<()> {
        let source = format!("/bridge/{}", self.sink);
        let schema = format!("https://spinmesh.dev/schemas/events/{report}/v1");
        let subject = format!(
            "notification/{}",
            data["notification_id"].as_str().unwrap_or_default()
        );
        let sink = self.sink.as_str();
        self.client
            .lock()
            .await
            .run(async |client| {
                client
                    .execute(
                        "WITH recorded AS ( \
                           INSERT INTO sink_deliveries (sink, event_id, outcome) \
                           VALUES ($1, $2, $3) \
                           ON CONFLICT (sink, event_id) DO UPDATE \
                             SET outcome = EXCLUDED.outcome, recorded_at = now() \
                             WHERE sink_deliveries.outcome = 'failed' AND EXCLUDED.outcome = 'sent' \
                           RETURNING event_id) \
                         INSERT INTO outbox (id, source, type, subject, aggregate, dataschema, data, traceparent) \
                         SELECT gen_random_uuid(), $4, $5, $6, 'notifications', $7, $8, $9 FROM recorded",
                        &[
                            &sink,
                            &event.id,
                            &outcome,
                            &source,
                            &report,
                            &subject,
                            &schema,
                            data,
                            &event.traceparent,
                        ],
                    )
                    .await
                    .with_context(|| format!("recording {report} for event {}", event.id))?;
                Ok(())
            })
            .await
    }
}

/// A fresh random nonce for [`seal::seal`].
///
/// # Errors
/// When the system has no randomness to give.
fn nonce() -> anyhow::Result<[u8; 12]> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("random nonce: {e}"))?;
    Ok(nonce)
}
