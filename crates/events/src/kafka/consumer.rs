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
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::offsets::{OffsetTracker, Position};
use super::publisher::{Outgoing, headers, producer, send_all};
use super::topics::DLQ_SUFFIX;
use super::{KafkaConfig, Topics};
use crate::dead_letters;
use crate::dispatch::DeadLetter;
use crate::event::{Binding, OutboxEvent};
use crate::pipeline::{Delivery, Received};
use crate::reconnect::reconnecting;

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
        let consumer: StreamConsumer = self
            .kafka
            .consumer(name)
            .create()
            .context("configuring the Kafka consumer")?;
        let pattern = Topics::subscription_pattern(&self.kafka.topic_prefix);
        consumer
            .subscribe(&[&pattern])
            .with_context(|| format!("subscribing to {pattern}"))?;
        let dead_letters = Arc::new(producer(&self.kafka)?);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Position>();
        let round = CancellationToken::new();
        let lanes = self.delivery.lanes(self.kafka.max_in_flight, round.clone());
        let mut tracker = OffsetTracker::default();
        let limit = self.kafka.max_in_flight.max(1);
        let result = loop {
            tokio::select! {
                biased;
                Some(at) = done_rx.recv() => finished(&consumer, &mut tracker, &at),
                _ = shutdown.changed() => break Ok(()),
                received = consumer.recv(), if tracker.in_flight() < limit => match received {
                    Ok(message) => {
                        let message = message.detach();
                        tracker.started(&position(&message));
                        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                        let item = Record {
                            event: to_event(&message),
                            message,
                            dead_letters: dead_letters.clone(),
                            done: done_tx.clone(),
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
                },
            }
        };
        // Let the lanes finish what they hold, store how far they got, and
        // commit before leaving the group.
        round.cancel();
        lanes.close().await;
        while let Ok(at) = done_rx.try_recv() {
            finished(&consumer, &mut tracker, &at);
        }
        if let Err(err) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %err, "final offset commit");
        }
        result
    }
}

/// Stores the partition's offset when `at` finished the run before it.
fn finished(consumer: &StreamConsumer, tracker: &mut OffsetTracker, at: &Position) {
    let Some(next) = tracker.finished(at) else {
        return;
    };
    let mut offsets = TopicPartitionList::new();
    let stored = offsets
        .add_partition_offset(&at.topic, at.partition, Offset::Offset(next))
        .and_then(|()| consumer.store_offsets(&offsets));
    if let Err(err) = stored {
        // After a rebalance took the partition away: its new owner reads
        // from the last commit, so what this consumer delivered since is
        // delivered again (idempotent sinks absorb it). Worth seeing: a
        // burst of these is a burst of redeliveries.
        tracing::warn!(topic = %at.topic, partition = at.partition, error = %err, "offset not stored; the partition's new owner will redeliver from its last commit");
    }
}

/// A message from an event topic; acknowledging it reports its position
/// to the offset tracker.
struct Record {
    message: OwnedMessage,
    event: Option<OutboxEvent>,
    dead_letters: Arc<FutureProducer>,
    done: mpsc::UnboundedSender<Position>,
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
            let message = &self.message;
            let topic = format!("{}{DLQ_SUFFIX}", message.topic());
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
            let why = dead_letters::broker_headers(subscription, why, None);
            let original = message
                .headers()
                .into_iter()
                .flat_map(|hs| hs.iter().map(|h| (h.key, h.value.unwrap_or_default())));
            let pairs = original.chain(why.iter().map(|(k, v)| (*k, v.as_bytes())));
            let outgoing = Outgoing {
                topic: &topic,
                key: &key,
                payload: message.payload().unwrap_or_default(),
                headers: headers(pairs),
            };
            send_all(&self.dead_letters, vec![outgoing])
                .await
                .with_context(|| format!("writing to {topic}"))
        }
        .boxed()
    }

    fn ack(self, _dead_lettered: bool) -> BoxFuture<'static, ()> {
        let _ = self.done.send(position(&self.message));
        futures::future::ready(()).boxed()
    }
}

/// Rebuilds the event from its Kafka form (see `publisher`).
fn to_event(message: &OwnedMessage) -> Option<OutboxEvent> {
    let header = |name: &str| {
        message.headers().and_then(|hs| {
            hs.iter()
                .find(|h| h.key == name)
                .and_then(|h| std::str::from_utf8(h.value?).ok())
        })
    };
    OutboxEvent::from_broker(
        &Binding::KAFKA,
        header,
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
