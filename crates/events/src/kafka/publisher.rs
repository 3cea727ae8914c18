//! Producing events: the relay's sink (idempotent, acknowledged by all
//! in-sync replicas) and the consumers' dead-letter writes.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use futures::future::try_join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use super::interest::Recorder;
use super::{KafkaConfig, Topics};
use crate::event::{Binding, OutboxEvent};
use crate::relay::{Confirmation, Publish};

/// The relay's producer.
pub struct KafkaPublisher {
    producer: FutureProducer,
    topics: Topics,
    recorder: Option<Recorder>,
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
            recorder: None,
        })
    }

    /// Records which topic each event type goes to before publishing it,
    /// as the outbox relay must for consumer groups to find it (see
    /// [`super::interest`]).
    #[must_use]
    pub fn recording(self, recorder: Recorder) -> Self {
        Self {
            recorder: Some(recorder),
            ..self
        }
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

/// A header's text, or `None` when it is absent or not UTF-8.
pub fn header_text<'a>(message: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    message.headers().and_then(|hs| {
        hs.iter()
            .find(|h| h.key == name)
            .and_then(|h| std::str::from_utf8(h.value?).ok())
    })
}

/// Writes `message` again, to `topic`, with its key, payload and headers,
/// `extra` added (replacing headers of the same name); returns once the
/// cluster acknowledged it. How dead letters are written and put back.
///
/// # Errors
/// When the message is not acknowledged.
pub async fn rewrite(
    producer: &FutureProducer,
    message: &OwnedMessage,
    topic: &str,
    extra: &[(&str, String)],
) -> anyhow::Result<()> {
    let original = message.headers().into_iter().flat_map(|hs| {
        hs.iter()
            .filter(|h| !extra.iter().any(|(k, _)| *k == h.key))
            .map(|h| (h.key, h.value.unwrap_or_default()))
    });
    let pairs = original.chain(extra.iter().map(|(k, v)| (*k, v.as_bytes())));
    let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
    let outgoing = Outgoing {
        topic,
        key: &key,
        payload: message.payload().unwrap_or_default(),
        headers: headers(pairs),
    };
    send_all(producer, vec![outgoing])
        .await
        .with_context(|| format!("writing to {topic}"))
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
    queue_all(producer, messages).await?.await
}

/// Queues every message in order and returns what resolves once the
/// cluster has acknowledged all of them.
///
/// # Errors
/// When a message cannot be queued (the returned confirmation fails when
/// one is not acknowledged).
async fn queue_all(
    producer: &FutureProducer,
    messages: Vec<Outgoing<'_>>,
) -> anyhow::Result<Confirmation> {
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
    Ok(async move {
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
    .boxed())
}

impl Publish for KafkaPublisher {
    async fn send(&self, events: &[OutboxEvent]) -> anyhow::Result<Confirmation> {
        let topics: Vec<String> = events
            .iter()
            .map(|e| self.topics.of_aggregate(&e.aggregate))
            .collect();
        for topic in topics.iter().collect::<BTreeSet<_>>() {
            self.topics.ensure(topic).await?;
        }
        if let Some(recorder) = &self.recorder {
            recorder.record(events).await?;
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
        queue_all(&self.producer, messages).await
    }
}
