//! One subscription's consumer group member: reads every event topic,
//! hands events to ordered lanes by key (the aggregate id), and stores a
//! partition's offset only when every event before it was answered 2xx,
//! filtered out, or written to the dead-letter topic.

use std::sync::Arc;

use anyhow::Context;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use super::offsets::{OffsetTracker, Position};
use super::publisher::{Outgoing, headers, producer, send_all};
use super::topics::DLQ_SUFFIX;
use super::{KafkaConfig, Topics};
use crate::dispatch::{DispatchConfig, Final, backoff, deliver_all};
use crate::event::{OutboxEvent, Signer};
use crate::invoke::Invoker;
use crate::lanes::Lanes;
use crate::subscription::Subscription;
use rdkafka::producer::FutureProducer;

/// Consumes every event topic for one subscription.
pub struct KafkaConsumer {
    /// Kafka settings.
    pub kafka: KafkaConfig,
    /// What to consume.
    pub subscription: Subscription,
    /// Where to deliver.
    pub invoker: Invoker,
    /// Signs deliveries.
    pub signer: Signer,
    /// Retry policy and lane count (`concurrency`).
    pub config: DispatchConfig,
}

impl KafkaConsumer {
    /// Consumes until `shutdown`, starting over with backoff after a
    /// failure. What was not stored is read again by whoever owns the
    /// partition next.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let me = Arc::new(self);
        let mut failures = 0;
        while !*shutdown.borrow() {
            match me.clone().consume(shutdown.clone()).await {
                Ok(()) => return,
                Err(err) => {
                    failures += 1;
                    tracing::warn!(subscription = %me.subscription.name, error = %format!("{err:#}"), "Kafka consumer interrupted; restarting");
                    tokio::time::sleep(backoff(&me.config, failures.min(6))).await;
                }
            }
        }
    }

    async fn consume(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let consumer: StreamConsumer = self
            .kafka
            .consumer(&self.subscription.name)
            .create()
            .context("configuring the Kafka consumer")?;
        let pattern = Topics::subscription_pattern(&self.kafka.topic_prefix);
        consumer
            .subscribe(&[&pattern])
            .with_context(|| format!("subscribing to {pattern}"))?;
        let dead_letters = Arc::new(producer(&self.kafka)?);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Position>();
        let lanes = {
            let (me, shutdown) = (self.clone(), shutdown.clone());
            Lanes::spawn(
                self.subscription.lanes(self.config.concurrency),
                self.kafka.max_in_flight,
                self.subscription.batch,
                move |messages: Vec<OwnedMessage>| {
                    let (me, dead_letters, done, shutdown) = (
                        me.clone(),
                        dead_letters.clone(),
                        done_tx.clone(),
                        shutdown.clone(),
                    );
                    async move {
                        for at in me.handle(messages, &dead_letters, shutdown).await {
                            let _ = done.send(at);
                        }
                    }
                },
            )
        };
        let mut tracker = OffsetTracker::default();
        let limit = self.kafka.max_in_flight.max(1);
        let result = loop {
            tokio::select! {
                biased;
                Some(at) = done_rx.recv() => self.finished(&consumer, &mut tracker, &at),
                _ = shutdown.changed() => break Ok(()),
                received = consumer.recv(), if tracker.in_flight() < limit => match received {
                    Ok(message) => {
                        let message = message.detach();
                        tracker.started(&position(&message));
                        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                        if let Err(e) = lanes.send(&key, message).await {
                            break Err(e.into());
                        }
                    }
                    Err(err) => {
                        // librdkafka reconnects by itself; keep reading.
                        tracing::warn!(subscription = %self.subscription.name, error = %err, "Kafka consumer error");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
            }
        };
        // Let the lanes finish what they hold, store how far they got, and
        // commit before leaving the group.
        lanes.close().await;
        while let Ok(at) = done_rx.try_recv() {
            self.finished(&consumer, &mut tracker, &at);
        }
        if let Err(err) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %err, "final offset commit");
        }
        result
    }

    fn finished(&self, consumer: &StreamConsumer, tracker: &mut OffsetTracker, at: &Position) {
        let Some(next) = tracker.finished(at) else {
            return;
        };
        let mut offsets = TopicPartitionList::new();
        let stored = offsets
            .add_partition_offset(&at.topic, at.partition, Offset::Offset(next))
            .and_then(|()| consumer.store_offsets(&offsets));
        if let Err(err) = stored {
            // After a rebalance took the partition away: its new owner
            // reads from the last commit, so what this consumer delivered
            // since is delivered again (idempotent handlers absorb it). Worth
            // seeing: a burst of these is a burst of redeliveries.
            tracing::warn!(topic = %at.topic, partition = at.partition, error = %err, "offset not stored; the partition's new owner will redeliver from its last commit");
        }
    }

    /// Handles what a lane handed over (in order, batched when the
    /// subscription allows) and returns the positions that are done with:
    /// all of them, except a message whose dead-letter write never
    /// succeeded before shutdown.
    async fn handle(
        &self,
        messages: Vec<OwnedMessage>,
        dead_letters: &FutureProducer,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<Position> {
        let mut done = Vec::with_capacity(messages.len());
        let mut wanted = Vec::with_capacity(messages.len());
        for message in &messages {
            let header = |name: &str| {
                message.headers().and_then(|hs| {
                    hs.iter()
                        .find(|h| h.key == name)
                        .and_then(|h| std::str::from_utf8(h.value?).ok())
                })
            };
            match OutboxEvent::from_broker(header, message.payload().unwrap_or_default()) {
                None => {
                    tracing::error!(
                        topic = message.topic(),
                        offset = message.offset(),
                        "a message without CloudEvent attributes goes to the dead letters"
                    );
                    let why = [
                        ("x-spinmesh-error", "not a CloudEvent".to_string()),
                        ("x-spinmesh-subscription", self.subscription.name.clone()),
                    ];
                    if self
                        .dead_letter(dead_letters, message, &why, shutdown.clone())
                        .await
                    {
                        done.push(position(message));
                    }
                }
                Some(event) if !self.subscription.wants(&event.event_type) => {
                    done.push(position(message));
                }
                Some(event) => wanted.push((message, event)),
            }
        }
        let events: Vec<OutboxEvent> = wanted.iter().map(|(_, e)| e.clone()).collect();
        let finals = deliver_all(
            &self.invoker,
            &self.subscription,
            &events,
            &self.signer,
            &self.config,
        )
        .await;
        for ((message, event), outcome) in wanted.into_iter().zip(finals) {
            if let Final::DeadLetter { .. } = outcome {
                tracing::error!(subscription = %self.subscription.name, event = %event.id, ?outcome, "dead-lettering event");
                let why = outcome.dead_letter_headers(&self.subscription.name);
                if !self
                    .dead_letter(dead_letters, message, &why, shutdown.clone())
                    .await
                {
                    continue;
                }
            }
            done.push(position(message));
        }
        done
    }

    /// Writes the message with its original headers plus `why` to
    /// `<topic>.dlq`, retrying until the cluster acknowledges it. Nothing
    /// is stored meanwhile: if the bridge stops first, the event is read
    /// again later.
    async fn dead_letter(
        &self,
        producer: &FutureProducer,
        message: &OwnedMessage,
        why: &[(&'static str, String)],
        shutdown: watch::Receiver<bool>,
    ) -> bool {
        let topic = format!("{}{DLQ_SUFFIX}", message.topic());
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        let original: Vec<(String, Vec<u8>)> = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        let mut attempt = 0;
        loop {
            let pairs = original
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .chain(why.iter().map(|(k, v)| (*k, v.as_bytes())));
            let outgoing = Outgoing {
                topic: &topic,
                key: &key,
                payload: message.payload().unwrap_or_default(),
                headers: headers(pairs),
            };
            match send_all(producer, vec![outgoing]).await {
                Ok(()) => return true,
                Err(err) => {
                    attempt += 1;
                    tracing::error!(%topic, error = %format!("{err:#}"), "dead-letter write failed; retrying");
                    if *shutdown.borrow() {
                        return false;
                    }
                    tokio::time::sleep(backoff(&self.config, attempt.min(6))).await;
                }
            }
        }
    }
}

fn position(message: &OwnedMessage) -> Position {
    Position {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
    }
}
