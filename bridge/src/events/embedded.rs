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
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::{Notify, watch};
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::dispatch::{DispatchConfig, Final, backoff, deliver_with_retry};
use super::event::{OutboxEvent, Signer};
use super::invoke::Invoker;
use super::subscription::Subscription;
use crate::host::outbound::redact;

/// The channel the outbox trigger notifies.
pub const OUTBOX_CHANNEL: &str = "spinmesh_outbox";

/// Dispatches every subscription from the outbox.
pub struct EmbeddedDispatcher {
    /// Where the outbox lives.
    pub database_url: String,
    /// What to dispatch.
    pub subscriptions: Vec<Subscription>,
    /// Where to deliver.
    pub invoker: Invoker,
    /// Signs deliveries.
    pub signer: Signer,
    /// Timing and retry settings.
    pub config: DispatchConfig,
}

impl EmbeddedDispatcher {
    /// Runs until `shutdown` turns true. Connection failures are retried
    /// forever with backoff; a database outage pauses delivery, it does not
    /// end it.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let wake = Arc::new(Notify::new());
        let me = Arc::new(self);
        let mut tasks = Vec::new();
        {
            let (me, wake, shutdown) = (me.clone(), wake.clone(), shutdown.clone());
            tasks.push(tokio::spawn(async move { me.listen(wake, shutdown).await }));
        }
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

    /// LISTENs for outbox inserts and wakes every subscription.
    async fn listen(&self, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0;
        while !*shutdown.borrow() {
            let result = async {
                let (client, mut conn) = tokio_postgres::connect(&self.database_url, NoTls)
                    .await
                    .with_context(|| format!("connecting to {}", redact(&self.database_url)))?;
                let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                let sql = format!("LISTEN {OUTBOX_CHANNEL}");
                let listen = client.batch_execute(&sql);
                tokio::pin!(listen);
                // Drive the connection while LISTEN is in flight.
                loop {
                    tokio::select! {
                        r = &mut listen => { r?; break; }
                        m = messages.next() => if m.is_none() { anyhow::bail!("connection closed") },
                    }
                }
                // Anything committed before LISTEN took effect.
                wake.notify_waiters();
                loop {
                    tokio::select! {
                        m = messages.next() => match m {
                            Some(Ok(AsyncMessage::Notification(_))) => wake.notify_waiters(),
                            Some(Ok(_)) => {}
                            Some(Err(e)) => return Err(e.into()),
                            None => anyhow::bail!("connection closed"),
                        },
                        _ = shutdown.changed() => return Ok(()),
                    }
                }
            }
            .await;
            if let Err(err) = result {
                failures += 1;
                tracing::warn!(error = %format!("{err:#}"), "outbox listener lost its connection; polling meanwhile");
                tokio::time::sleep(backoff(&self.config, failures.min(6))).await;
            }
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
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let (client, conn) = tokio_postgres::connect(&self.database_url, NoTls)
            .await
            .with_context(|| format!("connecting to {}", redact(&self.database_url)))?;
        let conn_task = tokio::spawn(conn);
        let _abort = AbortOnDrop(conn_task);

        // One active dispatcher per subscription across replicas.
        let lock_key = lock_key(&sub.name);
        loop {
            let held: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&lock_key])
                .await?
                .get(0);
            if held {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
        client
            .execute(
                "INSERT INTO bridge_cursors (subscription, txid, position) VALUES ($1, '0', 0)
                 ON CONFLICT (subscription) DO NOTHING",
                &[&sub.name],
            )
            .await
            .context("creating the cursor")?;
        let read = client
            .prepare(
                "SELECT position, txid::text, id, source, type, subject, aggregate,
                        to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                        dataschema, data::text
                   FROM outbox
                  WHERE (txid, position) > ($1::text::xid8, $2)
                    AND txid < pg_snapshot_xmin(pg_current_snapshot())
                  ORDER BY txid, position
                  LIMIT $3",
            )
            .await?;
        let (mut txid, mut position): (String, i64) = {
            let row = client
                .query_one(
                    "SELECT txid::text, position FROM bridge_cursors WHERE subscription = $1",
                    &[&sub.name],
                )
                .await?;
            (row.get(0), row.get(1))
        };
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            // Register interest before reading so a notification that
            // arrives during the read is not lost.
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let rows = client
                .query(&read, &[&txid, &position, &self.config.batch_size])
                .await?;
            if rows.is_empty() {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                continue;
            }
            let events: Vec<OutboxEvent> = rows
                .iter()
                .map(|r| OutboxEvent {
                    position: r.get(0),
                    txid: r.get(1),
                    id: r.get(2),
                    source: r.get(3),
                    event_type: r.get(4),
                    subject: r.get(5),
                    aggregate: r.get(6),
                    time: r.get(7),
                    dataschema: r.get(8),
                    data: r.get(9),
                })
                .collect();
            let last = events.last().map(|e| (e.txid.clone(), e.position));
            self.deliver_batch(&client, sub, &events).await?;
            if let Some((t, p)) = last {
                client
                    .execute(
                        "UPDATE bridge_cursors SET txid = $2::text::xid8, position = $3, updated_at = now()
                          WHERE subscription = $1",
                        &[&sub.name, &t, &p],
                    )
                    .await
                    .context("advancing the cursor")?;
                (txid, position) = (t, p);
            }
        }
    }

    /// Delivers the wanted events of a batch: subjects in parallel, each
    /// subject's events in order. Returns once every event is delivered or
    /// dead-lettered.
    async fn deliver_batch(
        &self,
        client: &Client,
        sub: &Subscription,
        events: &[OutboxEvent],
    ) -> anyhow::Result<()> {
        let mut by_subject: Vec<Vec<OutboxEvent>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for event in events.iter().filter(|e| sub.wants(&e.event_type)) {
            let slot = *index.entry(event.subject.as_str()).or_insert_with(|| {
                by_subject.push(Vec::new());
                by_subject.len() - 1
            });
            by_subject[slot].push(event.clone());
        }
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(by_subject)
            .map(|group| async move {
                for event in &group {
                    let outcome =
                        deliver_with_retry(&self.invoker, sub, event, &self.signer, &self.config)
                            .await;
                    if let Final::DeadLetter {
                        attempts,
                        status,
                        error,
                    } = outcome
                    {
                        dead_letter(client, sub, event, attempts, status, &error).await?;
                    }
                }
                anyhow::Ok(())
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect()
            .await;
        results.into_iter().collect()
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

/// A stable advisory-lock key per subscription name.
fn lock_key(name: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("spinmesh-subscription:{name}").as_bytes());
    i64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
