//! One subscription's Kafka source: a consumer group member reading every
//! event topic, handing messages to the shared delivery stage
//! ([`crate::pipeline`]) under their key (the subject), and storing a
//! partition's offset only when every message before it was delivered,
//! filtered out, or written to the dead-letter topic.

use std::sync::Arc;

use anyhow::Context;
use futures::FutureExt;
use futures::future::BoxFuture;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::handover::{self, Handover, Progress};
use super::interest::Interest;
use super::offsets::Position;
use super::publisher::{header_text, producer, rewrite};
use super::topics::DLQ_SUFFIX;
use super::{KafkaConfig, Topics};
use crate::dead_letters;
use crate::dispatch::DeadLetter;
use crate::event::{Binding, OutboxEvent};
use crate::outbox::LazyClient;
use crate::pipeline::{Delivery, Received};
use crate::reconnect::reconnecting;
use spinmesh_config::database::Database;

type Kafka = StreamConsumer<Handover>;

/// Consumes the event topics that hold one subscription's types.
pub struct KafkaConsumer {
    /// Kafka settings.
    pub kafka: KafkaConfig,
    /// Where the record of which topics hold which types is (see
    /// [`super::interest`]).
    pub database: Database,
    /// The subscription's delivery stage.
    pub delivery: Arc<Delivery>,
}

impl KafkaConsumer {
    /// Consumes until `shutdown`, starting over with backoff after a
    /// failure. What was not stored is read again by whoever owns the
    /// partition next.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let what = format!("Kafka consumer {}", self.delivery.subscription.name);
        reconnecting(&what, &self.delivery.config.clone(), &shutdown, || {
            self.consume(shutdown.clone())
        })
        .await;
    }

    async fn consume(&self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let name = &self.delivery.subscription.name;
        let progress = Arc::new(Progress::default());
        let context = Handover {
            progress: progress.clone(),
            timeout: self.kafka.handover_timeout,
            subscription: name.clone(),
        };
        let consumer: Arc<Kafka> = Arc::new(
            self.kafka
                .consumer(name)
                .create_with_context(context)
                .context("configuring the Kafka consumer")?,
        );
        // However this round ends (an error, shutdown, or the task
        // aborted), the rebalance the consumer's close triggers must not
        // wait for deliveries nobody will settle. Declared after the
        // consumer, so it is dropped before it.
        let _abandon = Abandon(progress.clone());
        let mut interest = None;
        let mut record = LazyClient::new(self.database.clone());
        let mut refresh = tokio::time::interval(self.kafka.metadata_refresh);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let dead_letters = Arc::new(producer(&self.kafka)?);
        let round = CancellationToken::new();
        let in_flight = self
            .delivery
            .subscription
            .in_flight(self.kafka.max_in_flight, self.delivery.config.concurrency);
        let lanes = self.delivery.lanes(in_flight, round.clone());
        let capacity = Arc::new(Semaphore::new(in_flight));
        let result = loop {
            // A message holds a permit until it is settled (or dropped).
            let permit = tokio::select! {
                biased;
                _ = shutdown.changed() => break Ok(()),
                permit = capacity.clone().acquire_owned() => permit.expect("never closed"),
            };
            let reading = interest.as_ref().is_some_and(Interest::reads_any);
            let received = tokio::select! {
                biased;
                _ = shutdown.changed() => break Ok(()),
                _ = refresh.tick() => {
                    self.follow(&consumer, &mut record, &mut interest).await?;
                    continue;
                }
                received = consumer.recv(), if reading => received.map(|m| m.detach()),
            };
            match received {
                Ok(message) => {
                    let at = position(&message);
                    progress.started(&at);
                    let key =
                        String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                    let item = Record {
                        event: to_event(&message),
                        message,
                        at,
                        dead_letters: dead_letters.clone(),
                        consumer: consumer.clone(),
                        progress: progress.clone(),
                        _permit: permit,
                    };
                    if let Err(e) = lanes.send(&key, item).await {
                        break Err(e.into());
                    }
                }
                Err(err) => {
                    // librdkafka reconnects by itself; keep reading.
                    tracing::warn!(subscription = %name, error = %err, "Kafka consumer error");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        // Let the lanes finish what they hold (their acks store how far
        // they got), and commit before leaving the group.
        round.cancel();
        lanes.close().await;
        progress.abandon();
        if let Err(err) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %err, "final offset commit");
        }
        result
    }

    /// Subscribes to what the subscription is interested in now, if that
    /// changed. When the record cannot be read, the group keeps what it
    /// reads, or reads every event topic if it reads nothing yet.
    async fn follow(
        &self,
        consumer: &Kafka,
        record: &mut LazyClient,
        current: &mut Option<Interest>,
    ) -> anyhow::Result<()> {
        let subscription = &self.delivery.subscription;
        let prefix = &self.kafka.topic_prefix;
        let wanted = match Interest::read(record, subscription, prefix).await {
            Ok(wanted) => wanted,
            Err(err) if current.is_some() => {
                tracing::debug!(subscription = %subscription.name, error = %format!("{err:#}"), "event topics not reread");
                return Ok(());
            }
            Err(err) => {
                tracing::warn!(subscription = %subscription.name, error = %format!("{err:#}"),
                    "cannot read which topics hold which event types; reading every event topic");
                Interest::Every
            }
        };
        if current.as_ref() == Some(&wanted) {
            return Ok(());
        }
        match &wanted {
            Interest::Every => {
                let pattern = Topics::subscription_pattern(prefix);
                consumer
                    .subscribe(&[&pattern])
                    .with_context(|| format!("subscribing to {pattern}"))?;
            }
            Interest::Topics(topics) if topics.is_empty() => consumer.unsubscribe(),
            Interest::Topics(topics) => {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer
                    .subscribe(&names)
                    .with_context(|| format!("subscribing to {names:?}"))?;
            }
        }
        tracing::info!(subscription = %subscription.name, topics = ?wanted, "Kafka consumer reads");
        *current = Some(wanted);
        Ok(())
    }
}

/// Marks the round's progress abandoned when dropped.
struct Abandon(Arc<Progress>);

impl Drop for Abandon {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// A message from an event topic; acknowledging it stores its partition's
/// position once everything before it is settled.
struct Record {
    message: OwnedMessage,
    at: Position,
    event: Option<OutboxEvent>,
    dead_letters: Arc<FutureProducer>,
    consumer: Arc<Kafka>,
    progress: Arc<Progress>,
    _permit: OwnedSemaphorePermit,
}

impl Received for Record {
    fn event(&self) -> Option<&OutboxEvent> {
        self.event.as_ref()
    }

    /// Writes the message with its original headers plus why it died to
    /// `<topic>.dlq` and waits until the cluster acknowledged it.
    fn dead_letter<'a>(
        &'a self,
        subscription: &'a str,
        why: &'a DeadLetter,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            let topic = format!("{}{DLQ_SUFFIX}", self.message.topic());
            let why = dead_letters::broker_headers(subscription, why, None);
            rewrite(&self.dead_letters, &self.message, &topic, &why).await
        }
        .boxed()
    }

    fn ack(self, _dead_lettered: bool) -> BoxFuture<'static, ()> {
        let consumer = &self.consumer;
        self.progress.finished(&self.at, |next| {
            handover::store(consumer.as_ref(), &self.at, next)
        });
        futures::future::ready(()).boxed()
    }
}

/// Rebuilds the event from its Kafka form (see `publisher`).
fn to_event(message: &OwnedMessage) -> Option<OutboxEvent> {
    OutboxEvent::from_broker(
        &Binding::KAFKA,
        |name| header_text(message, name),
        message.payload().unwrap_or_default(),
    )
}

fn position(message: &OwnedMessage) -> Position {
    Position {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
    }
}
