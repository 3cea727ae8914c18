//! The embedded default: no broker. Each subscription reads the outbox
//! through its own durable cursor (`bridge_cursors`) and delivers straight
//! to its function.
//!
//! Reading follows the outbox's ordering rule: only rows whose transaction
//! is older than every running transaction, in `(txid, position)` order, so
//! nothing that commits late is skipped. A batch is split by subject; each
//! subject's events go in order, different subjects in parallel. The cursor
//! moves only after the whole batch is delivered or dead-lettered, so a
//! crash redelivers (at-least-once) and idempotent handlers absorb it.
//! A session advisory lock per subscription keeps one bridge replica
//! dispatching it while others stand by.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::{Notify, watch};
use tokio_postgres::Client;

use super::dispatch::{DispatchConfig, Final, backoff, deliver_all};
use super::event::{OutboxEvent, Signer};
use super::invoke::Invoker;
use super::outbox::{self, BatchHandler};
use super::subscription::Subscription;
use super::wake;
use spinmesh_config::database::Database;
use spinmesh_host::outbox_writes::OutboxWrites;

/// Dispatches every subscription from the outbox.
pub struct EmbeddedDispatcher {
    /// Where the outbox lives.
    pub database: Database,
    /// What to dispatch.
    pub subscriptions: Vec<Subscription>,
    /// Where to deliver.
    pub invoker: Invoker,
    /// Signs deliveries.
    pub signer: Signer,
    /// Timing and retry settings.
    pub config: DispatchConfig,
    /// The host in this process, when the functions run here: its guests'
    /// outbox writes wake the subscriptions directly (see [`super::wake`]).
    pub local_writes: Option<OutboxWrites>,
}

impl EmbeddedDispatcher {
    /// Runs until `shutdown` turns true. Connection failures are retried
    /// forever with backoff; a database outage pauses delivery, it does not
    /// end it.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let (wake, _waking) = wake::start(
            &self.database,
            self.local_writes.as_ref(),
            &self.config,
            &shutdown,
        );
        let me = Arc::new(self);
        let mut tasks = Vec::new();
        for sub in me.subscriptions.clone() {
            let (me, wake, shutdown) = (me.clone(), wake.clone(), shutdown.clone());
            tasks.push(tokio::spawn(async move {
                me.subscription_loop(sub, wake, shutdown).await;
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    async fn subscription_loop(
        &self,
        sub: Subscription,
        wake: Arc<Notify>,
        shutdown: watch::Receiver<bool>,
    ) {
        let mut failures = 0;
        while !*shutdown.borrow() {
            match self.run_subscription(&sub, &wake, shutdown.clone()).await {
                Ok(()) => return,
                Err(err) => {
                    failures += 1;
                    tracing::warn!(subscription = %sub.name, error = %format!("{err:#}"), "dispatch interrupted; reconnecting");
                    tokio::time::sleep(backoff(&self.config, failures.min(6))).await;
                }
            }
        }
    }

    async fn run_subscription(
        &self,
        sub: &Subscription,
        wake: &Notify,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let batching = (self.config.batch_size, self.config.poll_interval);
        let handler = SubscriptionBatches {
            dispatcher: self,
            sub,
        };
        outbox::consume(
            &self.database,
            &sub.name,
            batching,
            wake,
            shutdown,
            &handler,
        )
        .await
    }

    /// Delivers the wanted events of a batch: subjects in parallel, each
    /// subject's events in order. Returns once every event is delivered or
    /// dead-lettered, with how many were dead-lettered (in
    /// `bridge_dead_letters`, through `client`).
    pub(crate) async fn deliver_batch(
        &self,
        client: &Client,
        sub: &Subscription,
        events: &[OutboxEvent],
    ) -> anyhow::Result<usize> {
        let results: Vec<anyhow::Result<usize>> =
            futures::stream::iter(work_units(sub, events, self.config.concurrency))
                .map(|unit| async move {
                    let finals =
                        deliver_all(&self.invoker, sub, &unit, &self.signer, &self.config).await;
                    let mut dead = 0;
                    for (event, outcome) in unit.iter().zip(finals) {
                        if let Final::DeadLetter {
                            attempts,
                            status,
                            error,
                        } = outcome
                        {
                            dead_letter(client, sub, event, attempts, status, &error).await?;
                            dead += 1;
                        }
                    }
                    anyhow::Ok(dead)
                })
                .buffer_unordered(self.config.concurrency.max(1))
                .collect()
                .await;
        results.into_iter().sum()
    }
}

/// Splits the wanted events into sequences that may run in parallel, each
/// keeping its subjects' order: one per subject when events go one at a
/// time; with batching, subjects are merged into as few sequences as fill
/// whole batches (at most `lanes`).
fn work_units(sub: &Subscription, events: &[OutboxEvent], lanes: usize) -> Vec<Vec<OutboxEvent>> {
    let wanted: Vec<&OutboxEvent> = events.iter().filter(|e| sub.wants(&e.event_type)).collect();
    let mut units: Vec<Vec<OutboxEvent>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let lanes = wanted
        .len()
        .div_ceil(sub.batch.max(1))
        .clamp(1, lanes.max(1));
    for event in wanted {
        let slot = match index.get(event.subject.as_str()) {
            Some(&slot) => slot,
            None => {
                let slot = if sub.batch > 1 && units.len() >= lanes {
                    index.len() % lanes
                } else {
                    units.push(Vec::new());
                    units.len() - 1
                };
                index.insert(event.subject.as_str(), slot);
                slot
            }
        };
        units[slot].push(event.clone());
    }
    units
}

/// One subscription's batches, delivered by the dispatcher.
struct SubscriptionBatches<'a> {
    dispatcher: &'a EmbeddedDispatcher,
    sub: &'a Subscription,
}

impl BatchHandler for SubscriptionBatches<'_> {
    async fn handle(&self, client: &Client, events: &[OutboxEvent]) -> anyhow::Result<()> {
        self.dispatcher
            .deliver_batch(client, self.sub, events)
            .await
            .map(drop)
    }
}

/// Records a dead letter. A failure here fails the batch, so the cursor
/// does not move and nothing is acknowledged.
async fn dead_letter(
    client: &Client,
    sub: &Subscription,
    event: &OutboxEvent,
    attempts: u32,
    status: Option<u16>,
    error: &str,
) -> anyhow::Result<()> {
    tracing::error!(subscription = %sub.name, event = %event.id, attempts, ?status, error, "dead-lettering event");
    let headers: serde_json::Map<String, serde_json::Value> = event
        .headers()
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
                &sub.name,
                &event.id,
                &event.event_type,
                &(attempts as i32),
                &status.map(i32::from),
                &error,
                &serde_json::Value::Object(headers),
                &data,
            ],
        )
        .await
        .context("recording a dead letter")?;
    Ok(())
}
