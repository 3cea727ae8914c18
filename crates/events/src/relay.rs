//! The outbox relay: committed outbox rows, in order, published to a
//! broker in batches. The cursor moves only after the broker confirmed the
//! whole batch, so a crash republishes (at-least-once) and never skips.
//! The reader's advisory lock keeps one relay active across replicas.

use tokio::sync::{Notify, watch};

use super::dispatch::DispatchConfig;
use super::event::OutboxEvent;
use super::outbox::{self, BatchHandler};
use super::reconnect::reconnecting;
use super::wake;
use spinmesh_config::database::Database;
use spinmesh_host::outbox_writes::OutboxWrites;

/// A broker the relay publishes to.
pub trait Publish: Send + Sync {
    /// Publishes `events` and returns once the broker has confirmed all of
    /// them.
    fn publish(&self, events: &[OutboxEvent]) -> impl Future<Output = anyhow::Result<()>> + Send;
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

    async fn relay<P: Publish>(
        &self,
        publisher: &P,
        wake: &Notify,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let batching = (self.config.batch_size, self.config.poll_interval);
        let handler = PublishBatches(publisher);
        outbox::consume(
            &self.database,
            &self.name,
            batching,
            wake,
            shutdown,
            &handler,
        )
        .await
    }
}

/// Batches handed to a broker.
struct PublishBatches<'a, P>(&'a P);

impl<P: Publish> BatchHandler for PublishBatches<'_, P> {
    async fn handle(&self, events: &[OutboxEvent]) -> anyhow::Result<()> {
        self.0.publish(events).await
    }
}
