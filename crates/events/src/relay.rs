//! The outbox relay: committed outbox rows, in order, published to a
//! broker in batches, the next ones read and sent while the broker
//! confirms the earlier. The cursor moves past a batch only after the
//! broker confirmed it and every batch before it, so a crash republishes
//! (at-least-once) and never skips.
//! The reader's advisory lock keeps one relay active across replicas.

use tokio::sync::{Notify, watch};

use super::dispatch::DispatchConfig;
use super::event::OutboxEvent;
use super::metrics;
use super::outbox::{self, BatchHandler, Reading};
use super::reconnect::reconnecting;
use super::wake;
use spinmesh_config::database::Database;
use spinmesh_host::outbox_writes::OutboxWrites;

/// How many batches the relay has published and not yet seen confirmed.
/// A broker under load confirms in tens of milliseconds; reading and
/// publishing the next batch meanwhile keeps an event from waiting for the
/// batch ahead of it to be confirmed before its own is even sent.
const BATCHES_IN_FLIGHT: usize = 4;

/// A broker's confirmation of published events: the relay's batches are
/// handled once confirmed.
pub type Confirmation = outbox::Handled;

/// A broker the relay publishes to.
pub trait Publish: Send + Sync {
    /// Publishes `events` after everything published before, and returns
    /// without waiting for the broker: the confirmation resolves once the
    /// broker has confirmed all of them.
    fn send(
        &self,
        events: &[OutboxEvent],
    ) -> impl Future<Output = anyhow::Result<Confirmation>> + Send;

    /// Publishes `events` and returns once the broker has confirmed all
    /// of them.
    fn publish(&self, events: &[OutboxEvent]) -> impl Future<Output = anyhow::Result<()>> + Send {
        async move { self.send(events).await?.await }
    }
}

/// Relays the outbox to one broker.
pub struct OutboxRelay {
    /// Where the outbox lives.
    pub database: Database,
    /// The relay's cursor and lock name, e.g. `relay:amqp`.
    pub name: String,
    /// Batch size, poll interval, reconnect backoff.
    pub config: DispatchConfig,
    /// The host in this process, when the functions run here: its guests'
    /// outbox writes wake the relay directly (see [`super::wake`]).
    pub local_writes: Option<OutboxWrites>,
}

impl OutboxRelay {
    /// Runs until `shutdown`. Each round connects a fresh publisher with
    /// `connect`; a broker or database failure ends the round and the next
    /// one resumes, after a backoff, from the last confirmed batch.
    pub async fn run<P, F, Fut>(self, connect: F, shutdown: watch::Receiver<bool>)
    where
        P: Publish,
        F: Fn() -> Fut,
        Fut: Future<Output = anyhow::Result<P>>,
    {
        let (wake, waking) = wake::start(
            &self.database,
            self.local_writes.as_ref(),
            &self.config,
            &shutdown,
        );
        let what = format!("outbox relay {}", self.name);
        reconnecting(&what, &self.config, &shutdown, || async {
            let publisher = connect().await?;
            self.relay(&publisher, &wake, shutdown.clone()).await
        })
        .await;
        drop(waking);
    }

    /// Reads committed batches and publishes them, up to
    /// [`BATCHES_IN_FLIGHT`] ahead of the broker's confirmations; the
    /// cursor moves past a batch once it and every batch before it are
    /// confirmed. `Ok` on shutdown, after what was published is confirmed.
    async fn relay<P: Publish>(
        &self,
        publisher: &P,
        wake: &Notify,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let reading = Reading {
            limit: self.config.batch_size,
            ahead: BATCHES_IN_FLIGHT,
            poll: self.config.poll_interval,
            ahead_when_caught_up: true,
        };
        // Every type: the broker carries every event, and subscriptions
        // filter on their side.
        outbox::consume(
            &self.database,
            &self.name,
            None,
            reading,
            wake,
            shutdown,
            &Publishing {
                publisher,
                broker: self.name.strip_prefix("relay:").unwrap_or(&self.name),
            },
        )
        .await
    }
}

/// The relay's batch handler: a batch is handled once the broker has
/// confirmed it, and counted as published then.
struct Publishing<'a, P> {
    publisher: &'a P,
    /// The `broker` label of the published count.
    broker: &'a str,
}

impl<P: Publish> BatchHandler for Publishing<'_, P> {
    async fn queue(&self, events: &[OutboxEvent]) -> anyhow::Result<Confirmation> {
        let confirmation = self.publisher.send(events).await?;
        let (broker, count) = (self.broker.to_owned(), events.len());
        Ok(Box::pin(async move {
            confirmation.await?;
            metrics::published(&broker, count);
            Ok(())
        }))
    }
}
