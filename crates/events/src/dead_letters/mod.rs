//! Dead letters you can act on: what failed and why, and sending it back
//! through its subscription once the cause is fixed (`bridge dead-letters
//! list | show | redrive`).
//!
//! Each transport keeps its own dead letters: the embedded one (and
//! `bridge replay`) in the `bridge_dead_letters` table, RabbitMQ in each
//! subscription's dead-letter queue, Kafka in `<topic>.dlq` topics. A
//! [`Store`] reads them all the same way; [`redrive`] delivers the chosen
//! ones through the subscription's own sink and policy (retries, backoff),
//! in order: one that is taken leaves the store, one that fails again goes
//! back with its attempts added. Other entries stay. Handlers are
//! idempotent, so redriving an event that was applied after all is
//! harmless.

pub mod amqp;
pub mod kafka;
pub mod table;
pub mod waiting;

use std::collections::HashMap;
use std::sync::Arc;

use crate::dispatch::{self, DeadLetter, Final};
use crate::event::OutboxEvent;
use crate::pipeline::Delivery;

/// One dead letter, whichever store holds it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The subscription it failed for.
    pub subscription: String,
    /// The event; `None` for a broker message that was not a CloudEvent.
    pub event: Option<OutboxEvent>,
    /// Attempts made, over every redrive.
    pub attempts: u32,
    /// The function's last status, if any.
    pub status: Option<u16>,
    /// The last error.
    pub error: String,
    /// When it first failed for good (RFC 3339), when known.
    pub first_failed: Option<String>,
    /// When it last failed (RFC 3339), when known.
    pub last_failed: Option<String>,
    /// Where the store keeps it (row id, or the message's place).
    pub(crate) place: usize,
}

impl Entry {
    /// The event id, or `-` for an unreadable message.
    pub fn event_id(&self) -> String {
        self.event
            .as_ref()
            .map(|e| e.id.to_string())
            .unwrap_or_else(|| "-".to_string())
    }

    /// The dead letter this entry becomes after failing again with `why`.
    pub fn failed_again(&self, why: &DeadLetter) -> DeadLetter {
        DeadLetter {
            attempts: self.attempts + why.attempts,
            ..why.clone()
        }
    }
}

/// Which dead letters a command acts on.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this subscription's.
    pub subscription: Option<String>,
    /// Only this event's (all of them when `None`).
    pub event_id: Option<String>,
}

impl Selection {
    fn wants(&self, entry: &Entry) -> bool {
        self.subscription
            .as_ref()
            .is_none_or(|s| *s == entry.subscription)
            && self
                .event_id
                .as_ref()
                .is_none_or(|id| *id == entry.event_id())
    }
}

/// A transport's dead letters.
pub trait Store: Send {
    /// Every dead letter of `subscriptions`, oldest first. Brokers hold
    /// what they hand out until [`Store::finish`] (or the store is
    /// dropped, which gives everything back untouched).
    fn take(
        &mut self,
        subscriptions: &[String],
    ) -> impl Future<Output = anyhow::Result<Vec<Entry>>> + Send;

    /// `entry` was delivered: it leaves the store.
    fn remove(&mut self, entry: &Entry) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// `entry` failed again: it goes back with `why` (attempts added).
    fn put_back(
        &mut self,
        entry: &Entry,
        why: &DeadLetter,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Settles everything taken (acknowledges, commits); an entry neither
    /// removed nor put back stays as it was.
    fn finish(self) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// What a redrive did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RedriveReport {
    /// Dead letters chosen.
    pub chosen: usize,
    /// Of those, delivered and removed.
    pub delivered: usize,
    /// Of those, failed again and put back.
    pub failed: usize,
}

impl std::fmt::Display for RedriveReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "redrove {} dead letter(s): {} delivered and removed, {} failed again and kept",
            self.chosen, self.delivered, self.failed
        )
    }
}

/// The dead letters of `subscriptions` that `selection` names, oldest
/// first; the store is given back untouched.
///
/// # Errors
/// When the store cannot be read.
pub async fn list(
    mut store: impl Store,
    subscriptions: &[String],
    selection: &Selection,
) -> anyhow::Result<Vec<Entry>> {
    let entries = store.take(subscriptions).await?;
    store.finish().await?;
    Ok(entries.into_iter().filter(|e| selection.wants(e)).collect())
}

/// Delivers the chosen dead letters again, in order, each through its
/// subscription's stage in `deliveries` (by subscription name).
///
/// # Errors
/// When the store fails, or a chosen entry's subscription is not in
/// `deliveries`. What was settled before stays settled.
pub async fn redrive(
    mut store: impl Store,
    selection: &Selection,
    deliveries: &HashMap<String, Arc<Delivery>>,
) -> anyhow::Result<RedriveReport> {
    let names: Vec<String> = deliveries.keys().cloned().collect();
    let entries = store.take(&names).await?;
    let mut report = RedriveReport::default();
    for entry in &entries {
        let chosen = selection.wants(entry);
        let (Some(event), true) = (entry.event.as_ref(), chosen) else {
            if chosen {
                tracing::warn!(subscription = %entry.subscription, "an unreadable message cannot be redriven; kept");
            }
            // Neither removed nor put back: it stays as it was.
            continue;
        };
        let delivery = deliveries.get(&entry.subscription).ok_or_else(|| {
            anyhow::anyhow!("no subscription {:?} in the manifest", entry.subscription)
        })?;
        report.chosen += 1;
        let outcome = dispatch::deliver_all(
            delivery.sink.as_ref(),
            &delivery.subscription,
            std::slice::from_ref(event),
            &delivery.config,
        )
        .await;
        match outcome.into_iter().next() {
            Some(Final::DeadLetter(why)) => {
                tracing::warn!(subscription = %entry.subscription, event = %event.id, error = %why.error, "failed again; back to the dead letters");
                store.put_back(entry, &entry.failed_again(&why)).await?;
                report.failed += 1;
            }
            _ => {
                store.remove(entry).await?;
                report.delivered += 1;
            }
        }
    }
    store.finish().await?;
    Ok(report)
}

/// The current time, RFC 3339 with milliseconds, for failure times.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Headers for a dead letter going (back) to a broker: why, and when it
/// first and last failed.
pub(crate) fn broker_headers(
    subscription: &str,
    why: &DeadLetter,
    first_failed: Option<&str>,
) -> Vec<(&'static str, String)> {
    let now = now();
    let mut headers = why.headers(subscription);
    headers.push((
        FIRST_FAILED_HEADER,
        first_failed.unwrap_or(&now).to_string(),
    ));
    headers.push((FAILED_HEADER, now));
    headers
}

/// When a broker dead letter first failed for good.
pub const FIRST_FAILED_HEADER: &str = "x-spinmesh-first-failed";
/// When a broker dead letter last failed.
pub const FAILED_HEADER: &str = "x-spinmesh-failed";

/// An entry from a broker message's `x-spinmesh-*` headers.
pub(crate) fn from_headers<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    event: Option<OutboxEvent>,
    place: usize,
) -> Entry {
    let text = |name: &str| header(name).map(str::to_string);
    Entry {
        subscription: text("x-spinmesh-subscription").unwrap_or_default(),
        event,
        attempts: header("x-spinmesh-attempts")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0),
        status: header("x-spinmesh-status").and_then(|s| s.parse().ok()),
        error: text("x-spinmesh-error").unwrap_or_default(),
        first_failed: text(FIRST_FAILED_HEADER),
        last_failed: text(FAILED_HEADER),
        place,
    }
}

/// The entries as an aligned text table, one line each (an empty store
/// says so).
pub fn table(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "no dead letters\n".to_string();
    }
    let rows: Vec<[String; 8]> = entries
        .iter()
        .map(|e| {
            [
                e.event_id(),
                e.subscription.clone(),
                e.event
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |ev| ev.event_type.clone()),
                e.attempts.to_string(),
                e.status.map_or_else(|| "-".to_string(), |s| s.to_string()),
                e.first_failed.clone().unwrap_or_else(|| "-".to_string()),
                e.last_failed.clone().unwrap_or_else(|| "-".to_string()),
                one_line(&e.error, 80),
            ]
        })
        .collect();
    let head = [
        "EVENT",
        "SUBSCRIPTION",
        "TYPE",
        "ATTEMPTS",
        "STATUS",
        "FIRST FAILED",
        "LAST FAILED",
        "ERROR",
    ];
    let mut widths = head.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(head.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// One entry in full, data included.
pub fn describe(entry: &Entry) -> String {
    let mut out = format!(
        "event         {}\nsubscription  {}\nattempts      {}\nstatus        {}\nfirst failed  {}\nlast failed   {}\nerror         {}\n",
        entry.event_id(),
        entry.subscription,
        entry.attempts,
        entry
            .status
            .map_or_else(|| "-".to_string(), |s| s.to_string()),
        entry.first_failed.as_deref().unwrap_or("-"),
        entry.last_failed.as_deref().unwrap_or("-"),
        entry.error,
    );
    if let Some(event) = &entry.event {
        out.push_str(&format!(
            "type          {}\nsource        {}\nsubject       {}\ntime          {}\ndata          {}\n",
            event.event_type, event.source, event.subject, event.time, event.data
        ));
    }
    out
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        flat.chars().take(max - 1).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(subscription: &str, id: Option<uuid::Uuid>) -> Entry {
        Entry {
            subscription: subscription.into(),
            event: id.map(|id| OutboxEvent {
                position: 0,
                txid: String::new(),
                id,
                source: "/t".into(),
                event_type: "probe.step".into(),
                subject: "a".into(),
                aggregate: "probes".into(),
                time: "2026-12-03T10:00:00Z".into(),
                dataschema: None,
                data: "{}".into(),
                traceparent: None,
            }),
            attempts: 3,
            status: Some(400),
            error: "HTTP 400:\n  rejected".into(),
            first_failed: None,
            last_failed: None,
            place: 0,
        }
    }

    #[test]
    fn selections_and_the_table() {
        let id = uuid::Uuid::new_v4();
        let a = entry("probe", Some(id));
        let b = entry("sink.tracking", None);
        let by_id = Selection {
            subscription: None,
            event_id: Some(id.to_string()),
        };
        assert!(by_id.wants(&a) && !by_id.wants(&b));
        let by_sub = Selection {
            subscription: Some("sink.tracking".into()),
            event_id: None,
        };
        assert!(!by_sub.wants(&a) && by_sub.wants(&b));
        let text = table(&[a.clone(), b]);
        assert!(text.starts_with("EVENT"), "{text}");
        assert!(
            text.contains(&id.to_string()) && text.contains("HTTP 400: rejected"),
            "{text}"
        );
        assert_eq!(table(&[]), "no dead letters\n");
        let again = a.failed_again(&DeadLetter {
            attempts: 2,
            status: Some(503),
            error: "x".into(),
        });
        assert_eq!(again.attempts, 5);
    }
}
