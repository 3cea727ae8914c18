//! The embedded source: no broker. Each subscription reads the outbox
//! through its own durable cursor (`bridge_cursors`) and delivers straight
//! to its sink. A subscription that does not take every type asks the
//! database for its own types only ([`outbox::TypeFilter`]): the others
//! are skipped there, never sent over, decoded or queued for delivery.
//!
//! Reading follows the outbox's ordering rule: only rows whose transaction
//! is older than every running transaction, in `(txid, position)` order, so
//! nothing that commits late is skipped. A batch goes through the shared
//! delivery stage ([`crate::pipeline`]): each subject's events in order,
//! different subjects in parallel, dead letters into `bridge_dead_letters`.
//! The cursor moves only after every event of the batch is settled, so a
//! crash redelivers (at-least-once) and idempotent sinks absorb it. A
//! session advisory lock per subscription keeps one bridge replica
//! delivering it while others stand by.

use std::sync::Arc;

use anyhow::Context;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::dispatch::DeadLetter;
use super::event::{Binding, OutboxEvent};
use super::lanes::Lanes;
use super::outbox::{self, BatchHandler, Handled, LazyClient, Reading, TypeFilter};
use super::pipeline::{Delivery, Received};
use super::reconnect::reconnecting;
use spinmesh_config::database::Database;

/// How many batches a subscription reads and hands to its lanes ahead of
/// the one being settled: the next read overlaps the current delivery, so
/// a sink (or a single-threaded server behind it) does not wait on the
/// outbox between batches.
const BATCHES_AHEAD: usize = 2;

/// One subscription read from the outbox.
pub struct EmbeddedSource {
    /// Where the outbox lives.
    pub database: Database,
    /// The subscription's delivery stage.
    pub delivery: Arc<Delivery>,
    /// Wakes the reader when events were written.
    pub wake: Arc<Notify>,
}

impl EmbeddedSource {
    /// Runs until `shutdown` turns true. A database outage pauses
    /// delivery, it does not end it: rounds resume through
    /// [`reconnecting`].
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let name = format!("outbox reader {}", self.delivery.subscription.name);
        reconnecting(&name, &self.delivery.config.clone(), &shutdown, || {
            self.round(shutdown.clone())
        })
        .await;
    }

    async fn round(&self, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let config = &self.delivery.config;
        let batches = Batches::new(&self.delivery, &self.database);
        let result = outbox::consume(
            &self.database,
            &self.delivery.subscription.name,
            TypeFilter::of(&self.delivery.subscription.patterns),
            Reading {
                limit: read_size(&self.delivery),
                ahead: BATCHES_AHEAD,
                poll: config.poll_interval,
                ahead_when_caught_up: false,
            },
            &self.wake,
            shutdown,
            &batches,
        )
        .await;
        batches.close().await;
        result
    }
}

/// How many rows one outbox read asks for: the configured batch size,
/// or a full batch for every lane of a batching sink
/// ([`crate::subscription::Subscription::in_flight`]).
fn read_size(delivery: &Delivery) -> i64 {
    let configured = usize::try_from(delivery.config.batch_size).unwrap_or(0);
    let size = delivery
        .subscription
        .in_flight(configured, delivery.config.concurrency);
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// Hands outbox batches to the delivery stage and waits until each is
/// settled: the barrier the cursor moves behind.
pub(crate) struct Batches {
    lanes: Lanes<Pending>,
    dead_letters: Arc<PgDeadLetters>,
    round: CancellationToken,
}

/// What a batch came to.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Settled {
    /// Events settled (acknowledged).
    pub settled: usize,
    /// Of those, dead-lettered.
    pub dead_lettered: usize,
}

impl Batches {
    pub(crate) fn new(delivery: &Arc<Delivery>, database: &Database) -> Self {
        let round = CancellationToken::new();
        Self {
            // A lane can queue a whole read, so its worker's batches are
            // as large as the subscription takes.
            lanes: delivery.lanes(
                usize::try_from(read_size(delivery))
                    .unwrap_or(usize::MAX)
                    .max(1),
                round.clone(),
            ),
            dead_letters: Arc::new(PgDeadLetters::new(database.clone())),
            round,
        }
    }

    /// Delivers `events` and returns once every one is settled.
    ///
    /// # Errors
    /// When one could not be settled (its dead letter could not be
    /// stored before the round ended): the batch must be read again.
    pub(crate) async fn deliver(&self, events: &[OutboxEvent]) -> anyhow::Result<Settled> {
        self.hand_over(events).await?.settled().await
    }

    /// Hands `events` to the lanes (waiting while they are full) and
    /// returns what tells when every one of them is settled, so the next
    /// batch can be read and queued meanwhile.
    ///
    /// # Errors
    /// When a lane's worker has stopped.
    pub(crate) async fn hand_over(&self, events: &[OutboxEvent]) -> anyhow::Result<Settlement> {
        let (done, settled) = mpsc::unbounded_channel();
        let items = events.iter().map(|event| {
            let item = Pending {
                event: event.clone(),
                dead_letters: self.dead_letters.clone(),
                done: done.clone(),
            };
            (event.subject.as_str(), item)
        });
        self.lanes.send_all(items).await?;
        Ok(Settlement {
            expected: events.len(),
            settled,
        })
    }

    pub(crate) async fn close(self) {
        self.round.cancel();
        self.lanes.close().await;
    }
}

impl BatchHandler for Batches {
    async fn queue(&self, events: &[OutboxEvent]) -> anyhow::Result<Handled> {
        let settlement = self.hand_over(events).await?;
        Ok(async move { settlement.settled().await.map(drop) }.boxed())
    }
}

/// A queued batch's progress: one message per settled event.
pub(crate) struct Settlement {
    expected: usize,
    settled: mpsc::UnboundedReceiver<bool>,
}

impl Settlement {
    /// Waits until every event is settled, or until the lanes have let go
    /// of the rest unsettled.
    ///
    /// # Errors
    /// When some were not settled (a dead letter could not be stored
    /// before the round ended).
    pub(crate) async fn settled(mut self) -> anyhow::Result<Settled> {
        let mut outcome = Settled::default();
        while let Some(dead) = self.settled.recv().await {
            outcome.settled += 1;
            outcome.dead_lettered += usize::from(dead);
        }
        if outcome.settled < self.expected {
            anyhow::bail!(
                "{} of {} events not settled (a dead letter could not be stored)",
                self.expected - outcome.settled,
                self.expected
            );
        }
        Ok(outcome)
    }
}

/// An outbox event in the delivery stage; acknowledging it reports to the
/// batch it came in (`true`: it was dead-lettered).
struct Pending {
    event: OutboxEvent,
    dead_letters: Arc<PgDeadLetters>,
    done: mpsc::UnboundedSender<bool>,
}

impl Received for Pending {
    fn event(&self) -> Option<&OutboxEvent> {
        Some(&self.event)
    }

    fn dead_letter<'a>(
        &'a self,
        subscription: &'a str,
        why: &'a DeadLetter,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.dead_letters
            .record(subscription, &self.event, why)
            .boxed()
    }

    fn ack(self, dead_lettered: bool) -> BoxFuture<'static, ()> {
        let _ = self.done.send(dead_lettered);
        futures::future::ready(()).boxed()
    }
}

/// `bridge_dead_letters`, written through one connection of its own that
/// is made again after a failure.
struct PgDeadLetters(Mutex<LazyClient>);

impl PgDeadLetters {
    fn new(database: Database) -> Self {
        Self(Mutex::new(LazyClient::new(database)))
    }

    async fn record(
        &self,
        subscription: &str,
        event: &OutboxEvent,
        why: &DeadLetter,
    ) -> anyhow::Result<()> {
        let mut client = self.0.lock().await;
        client
            .run(async |client| insert_dead_letter(client, subscription, event, why).await)
            .await
    }
}

async fn insert_dead_letter(
    client: &Client,
    subscription: &str,
    event: &OutboxEvent,
    why: &DeadLetter,
) -> anyhow::Result<()> {
    let headers: serde_json::Map<String, serde_json::Value> = event
        .broker_headers(&Binding::HTTP)
        .into_iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
        .collect();
    let data: serde_json::Value =
        serde_json::from_str(&event.data).unwrap_or(serde_json::Value::String(event.data.clone()));
    client
        .execute(
            "INSERT INTO bridge_dead_letters (subscription, event_id, type, attempts, status, error, headers, data)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &subscription,
                &event.id,
                &event.event_type,
                &(why.attempts as i32),
                &why.status.map(i32::from),
                &why.error,
                &serde_json::Value::Object(headers),
                &data,
            ],
        )
        .await
        .context("recording a dead letter")?;
    Ok(())
}
