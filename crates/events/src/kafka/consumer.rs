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
use super::offsets::Position;
use super::publisher::{header_text, producer, rewrite};
use super::topics::DLQ_SUFFIX;
use super::{KafkaConfig, Topics};
use crate::dead_letters;
use crate::dispatch::DeadLetter;
use crate::event::{Binding, OutboxEvent};
use crate::pipeline::{Delivery, Received};
use crate::reconnect::reconnecting;

type Kafka = StreamConsumer<Handover>;

/// Consumes every event topic for one subscription.
pub struct KafkaConsumer {
    /// Kafka settings.
    pub kafka: KafkaConfig,
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
        let pattern = Topics::subscription_pattern(&self.kafka.topic_prefix);
        consumer
            .subscribe(&[&pattern])
            .with_context(|| format!("subscribing to {pattern}"))?;
        let dead_letters = Arc::new(producer(&self.kafka)?);
        let round = CancellationToken::new();
        let lanes = self.delivery.lanes(self.kafka.max_in_flight, round.clone());
        let capacity = Arc::new(Semaphore::new(self.kafka.max_in_flight.max(1)));
        let result = loop {
            // A message holds a permit until it is settled (or dropped).
            let permit = tokio::select! {
                biased;
                _ = shutdown.changed() => break Ok(()),
                permit = capacity.clone().acquire_owned() => permit.expect("never closed"),
            };
            let received = tokio::select! {
                biased;
                _ = shutdown.changed() => break Ok(()),
                received = consumer.recv() => received.map(|m| m.detach()),
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
