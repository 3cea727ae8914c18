//! The stage between a source and a sink, shared by every source: ordered
//! lanes by key, the delivery policy, dead letters, and acknowledgement.
//!
//! A source reads events (with whatever its broker needs to settle them)
//! as [`Received`] items and hands each to [`Delivery::lanes`] under its
//! ordering key (the subject, or the Kafka message key, which is the
//! same). Each lane delivers what queued on it, in order, through
//! [`dispatch::deliver_all`], then settles each item in order:
//!
//! - delivered, or not wanted by the subscription → acknowledged;
//! - dead → written to the source's dead letters, told to the sink
//!   ([`Sink::dead_lettered`]: the email and SMS sinks mark the
//!   notification failed), then acknowledged.
//!
//! **When a dead-letter write fails** (the same policy in every
//! transport): nothing is acknowledged; the write is retried with backoff,
//! holding the lane, so the key's later events wait behind it and keep
//! their order. If the round ends first (shutdown, or the source lost its
//! connection), the item and everything after it in the lane stay
//! unacknowledged, and the source hands them out again later.

use std::sync::Arc;

use futures::future::BoxFuture;
use spinmesh_delivery::trace::Traceparent;
use tokio_util::sync::CancellationToken;

use crate::dispatch::{self, DeadLetter, DispatchConfig, Final, backoff};
use crate::event::OutboxEvent;
use crate::lanes::Lanes;
use crate::metrics;
use crate::sink::Sink;
use crate::subscription::Subscription;

/// An event as a source read it, with the means to settle it there.
pub trait Received: Send + Sync + 'static {
    /// The event, or `None` when the message is not a CloudEvent the
    /// bridge can read (it goes straight to the dead letters).
    fn event(&self) -> Option<&OutboxEvent>;

    /// Stores the message in the source's dead letters with `why`:
    /// `bridge_dead_letters` for the outbox, the subscription's
    /// dead-letter queue for RabbitMQ, `<topic>.dlq` for Kafka. Returns
    /// once the store confirmed it.
    fn dead_letter<'a>(
        &'a self,
        subscription: &'a str,
        why: &'a DeadLetter,
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Tells the source it is done with (delivered, filtered out, or
    /// dead-lettered when `dead_lettered`): it is never handed out again.
    fn ack(self, dead_lettered: bool) -> BoxFuture<'static, ()>;
}

/// One subscription's delivery stage.
pub struct Delivery {
    /// What is delivered where.
    pub subscription: Subscription,
    /// Where events go.
    pub sink: Arc<dyn Sink>,
    /// Retry, backoff and lane settings.
    pub config: DispatchConfig,
}

impl Delivery {
    /// Ordered lanes feeding this stage for one round of a source: queues
    /// of `depth` items, as many lanes as the subscription's batching
    /// allows (see [`Subscription::lanes`]). `round` ends dead-letter
    /// retries when the round is over; [`Lanes::close`] then returns.
    pub fn lanes<R: Received>(
        self: &Arc<Self>,
        depth: usize,
        round: CancellationToken,
    ) -> Lanes<R> {
        let me = self.clone();
        Lanes::spawn(
            self.subscription.lanes(self.config.concurrency),
            depth,
            self.subscription.batch,
            move |items: Vec<R>| {
                let (me, round) = (me.clone(), round.clone());
                async move { me.handle(items, &round).await }
            },
        )
    }

    /// Delivers what a lane handed over, then settles each item in order.
    pub async fn handle<R: Received>(&self, items: Vec<R>, round: &CancellationToken) {
        let sub = &self.subscription;
        // What becomes of each item, decided once: delivered, skipped (a
        // type the subscription does not want), or unreadable.
        let wanted: Vec<Option<bool>> = items
            .iter()
            .map(|item| item.event().map(|e| sub.wants(&e.event_type)))
            .collect();
        let events: Vec<OutboxEvent> = items
            .iter()
            .zip(&wanted)
            .filter(|(_, wanted)| **wanted == Some(true))
            .filter_map(|(item, _)| item.event().cloned())
            .collect();
        let mut finals = dispatch::deliver_all(self.sink.as_ref(), sub, &events, &self.config)
            .await
            .into_iter();
        let now = chrono::Utc::now();
        // Acknowledgements go out together once the lane's items are
        // settled (or before a dead letter is written): a broker client
        // then writes them in one go instead of a wake-up and a write per
        // message.
        let mut acks = Acks::default();
        for (item, wanted) in items.into_iter().zip(wanted) {
            let dead = match wanted {
                None => Some(DeadLetter::unreadable()),
                Some(false) => None,
                Some(true) => match finals.next() {
                    Some(Final::DeadLetter(dead)) => Some(dead),
                    _ => {
                        if let Some(event) = item.event() {
                            metrics::delivered(&sub.name, &event.time, now);
                            log_delivered(&sub.name, event);
                        }
                        None
                    }
                },
            };
            let dead_lettered = dead.is_some();
            if let Some(why) = dead {
                // What is settled goes out before a dead-letter write,
                // which may retry for as long as its store is down.
                acks.send().await;
                if let Some(event) = item.event() {
                    tracing::error!(subscription = %sub.name, event = %event.id, attempts = why.attempts, status = ?why.status, error = %why.error, "dead-lettering event");
                } else {
                    tracing::error!(subscription = %sub.name, "a message without CloudEvent attributes goes to the dead letters");
                }
                if !self.store_dead_letter(&item, &why, round).await {
                    // The round ended first: this item and the rest of the
                    // lane stay unacknowledged and come back.
                    return;
                }
                metrics::dead_lettered(&sub.name);
                if let Some(event) = item.event()
                    && !self.tell_sink(event, &why, round).await
                {
                    // As above: the event comes back; the sink's hook
                    // accepts being told twice.
                    return;
                }
            }
            acks.0.push(item.ack(dead_lettered));
        }
        acks.send().await;
    }

    /// Writes the dead letter, retrying with backoff until it is stored
    /// (`true`) or the round ends (`false`).
    async fn store_dead_letter<R: Received>(
        &self,
        item: &R,
        why: &DeadLetter,
        round: &CancellationToken,
    ) -> bool {
        self.until_done(
            "dead-letter write failed; nothing acknowledged, retrying",
            round,
            || item.dead_letter(&self.subscription.name, why),
        )
        .await
    }

    /// Tells the sink its event was dead-lettered ([`Sink::dead_lettered`]),
    /// retrying with backoff until it took it (`true`) or the round ends
    /// (`false`).
    async fn tell_sink(
        &self,
        event: &OutboxEvent,
        why: &DeadLetter,
        round: &CancellationToken,
    ) -> bool {
        self.until_done(
            "the sink could not record a dead letter; nothing acknowledged, retrying",
            round,
            || self.sink.dead_lettered(event, why),
        )
        .await
    }

    /// Runs `step` until it succeeds (`true`), waiting with backoff after
    /// each failure, or until the round ends (`false`).
    async fn until_done<'a>(
        &self,
        failing: &str,
        round: &CancellationToken,
        step: impl Fn() -> BoxFuture<'a, anyhow::Result<()>>,
    ) -> bool {
        let mut failures = 0;
        loop {
            match step().await {
                Ok(()) => return true,
                Err(err) => {
                    failures += 1;
                    let wait = backoff(&self.config, failures.min(6));
                    tracing::error!(subscription = %self.subscription.name, error = %format!("{err:#}"), retry_in_ms = wait.as_millis() as u64, "{failing}");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = round.cancelled() => return false,
                    }
                }
            }
        }
    }
}

/// One line per delivered event at debug, with its trace: with the
/// host's line per request (`answered`), what follows a purchase across
/// functions by its trace id.
fn log_delivered(subscription: &str, event: &OutboxEvent) {
    tracing::debug!(
        subscription,
        event = %event.id,
        r#type = %event.event_type,
        trace_id = event
            .traceparent
            .as_deref()
            .and_then(Traceparent::parse)
            .map(|t| t.trace_id_hex())
            .unwrap_or_default(),
        "delivered"
    );
}

/// Acknowledgements of settled items, not yet sent.
#[derive(Default)]
struct Acks(Vec<BoxFuture<'static, ()>>);

impl Acks {
    /// Sends those held (in order: each starts when first polled) and
    /// waits until they are out.
    async fn send(&mut self) {
        futures::future::join_all(self.0.drain(..)).await;
    }
}
