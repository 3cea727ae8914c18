//! Producing events: the relay's sink (idempotent, acknowledged by all
//! in-sync replicas) and the consumers' dead-letter writes.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use futures::future::try_join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use super::{KafkaConfig, Topics};
use crate::event::{Binding, OutboxEvent};
use crate::relay::Publish;

/// The relay's producer.
pub struct KafkaPublisher {
    producer: FutureProducer,
    topics: Topics,
}

impl KafkaPublisher {
    /// Configures an idempotent producer and an admin client. Nothing is
    /// contacted yet: the first publish creates the topics it needs.
    ///
    /// # Errors
    /// When the configuration is refused (unknown or invalid properties).
    pub fn connect(config: &KafkaConfig) -> anyhow::Result<Self> {
        Ok(Self {
            producer: producer(config)?,
            topics: Topics::new(config)?,
        })
    }
}

/// An idempotent producer for `config`.
///
/// # Errors
/// When the configuration is refused.
pub fn producer(config: &KafkaConfig) -> anyhow::Result<FutureProducer> {
    config
        .producer()
        .create()
        .context("configuring the Kafka producer")
}

/// Kafka headers from name/value pairs.
pub fn headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> OwnedHeaders {
    pairs
        .into_iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        })
}

/// One message to produce.
pub struct Outgoing<'a> {
    /// Destination topic.
    pub topic: &'a str,
    /// Partitioning key: the aggregate id.
    pub key: &'a str,
    /// The event data.
    pub payload: &'a [u8],
    /// CloudEvent attributes and metadata.
    pub headers: OwnedHeaders,
}

/// Queues every message in order, then waits until the cluster has
/// acknowledged all of them.
///
/// # Errors
/// When a message cannot be queued or is not acknowledged.
pub async fn send_all(
    producer: &FutureProducer,
    messages: Vec<Outgoing<'_>>,
) -> anyhow::Result<()> {
    let mut pending: Vec<DeliveryFuture> = Vec::with_capacity(messages.len());
    for m in messages {
        let mut record = FutureRecord::to(m.topic)
            .key(m.key)
            .payload(m.payload)
            .headers(m.headers);
        // Queue strictly in order; when librdkafka's queue is full, wait
        // for room rather than let a later message overtake this one.
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((err, _)) => return Err(err).context("queueing a Kafka message"),
            }
        }
    }
    let results = try_join_all(pending)
        .await
        .context("the Kafka producer stopped")?;
    for result in results {
        if let Err((err, _)) = result {
            return Err(err).context("the cluster did not acknowledge a message");
        }
    }
    Ok(())
}

impl Publish for KafkaPublisher {
    async fn publish(&self, events: &[OutboxEvent]) -> anyhow::Result<()> {
        let topics: Vec<String> = events
            .iter()
            .map(|e| self.topics.of_aggregate(&e.aggregate))
            .collect();
        for topic in topics.iter().collect::<BTreeSet<_>>() {
            self.topics.ensure(topic).await?;
        }
        let attributes: Vec<Vec<(&'static str, String)>> = events
            .iter()
            .map(|e| e.broker_headers(&Binding::KAFKA))
            .collect();
        let messages = events
            .iter()
            .zip(&topics)
            .zip(&attributes)
            .map(|((event, topic), attrs)| Outgoing {
                topic,
                key: &event.subject,
                payload: event.data.as_bytes(),
                headers: headers(attrs.iter().map(|(k, v)| (*k, v.as_bytes()))),
            })
            .collect();
        send_all(&self.producer, messages).await
    }
}
