//! Kafka's dead letters: the `<topic>.dlq` topics under the bridge's
//! prefix, read from the offsets a `dead-letters` consumer group
//! committed to their current ends. A topic is append-only, so a redrive
//! moves past everything it read: removed entries are gone, entries put
//! back and entries left alone are written again at the end, then the
//! group's offsets are committed. Listing commits nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};

use super::{Entry, Store, broker_headers, from_headers};
use crate::dispatch::DeadLetter;
use crate::event::{Binding, OutboxEvent};
use crate::kafka::KafkaConfig;
use crate::kafka::publisher::{header_text as header, producer, rewrite};
use crate::kafka::topics::DLQ_SUFFIX;

/// How long reading the dead-letter topics may take.
const READ_LIMIT: Duration = Duration::from_secs(30);

/// What happened to a message taken from a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Kept,
    Removed,
    PutBack,
}

/// Where each dead-letter partition ended when it was read.
type Ends = HashMap<(String, i32), i64>;

/// The dead-letter topics of one Kafka set-up.
pub struct KafkaStore {
    config: KafkaConfig,
    producer: FutureProducer,
    taken: Vec<(OwnedMessage, Fate)>,
    ends: Ends,
}

impl KafkaStore {
    /// Sets up the clients (nothing is contacted yet).
    ///
    /// # Errors
    /// When the configuration is refused.
    pub fn connect(config: &KafkaConfig) -> anyhow::Result<Self> {
        Ok(Self {
            config: config.clone(),
            producer: producer(config)?,
            taken: Vec::new(),
            ends: HashMap::new(),
        })
    }

    pub(super) fn consumer(config: &KafkaConfig) -> anyhow::Result<BaseConsumer> {
        let mut c = config.client();
        c.set("group.id", config.group("dead-letters"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        c.create().context("configuring the dead-letter reader")
    }

    /// Every message between the group's committed offsets and the
    /// topics' ends, and those ends.
    fn read(config: &KafkaConfig) -> anyhow::Result<(Vec<OwnedMessage>, Ends)> {
        let consumer = Self::consumer(config)?;
        let unread = unread(config, &consumer, Duration::from_secs(10))?;
        let mut ends = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for Unread {
            topic,
            partition,
            start,
            end,
        } in unread
        {
            if start < end {
                assignment.add_partition_offset(&topic, partition, Offset::Offset(start))?;
            }
            ends.insert((topic, partition), end);
        }
        let mut messages = Vec::new();
        if assignment.count() == 0 {
            return Ok((messages, ends));
        }
        consumer.assign(&assignment)?;
        let mut remaining: HashMap<(String, i32), i64> = assignment
            .elements()
            .iter()
            .map(|e| {
                let key = (e.topic().to_string(), e.partition());
                let end = ends[&key];
                (key, end)
            })
            .collect();
        let deadline = Instant::now() + READ_LIMIT;
        while !remaining.is_empty() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the dead-letter topics could not be read to their ends within {READ_LIMIT:?}"
            );
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.context("reading a dead-letter topic")?.detach();
            let key = (message.topic().to_string(), message.partition());
            if let Some(&end) = remaining.get(&key) {
                // A partition's messages come in offset order: done with
                // it once its end is reached.
                if message.offset() + 1 >= end {
                    remaining.remove(&key);
                }
                if message.offset() < end {
                    messages.push(message);
                }
            }
        }
        Ok((messages, ends))
    }
}

/// A dead-letter partition: from where the `dead-letters` group has yet
/// to read (its committed offset, or the start of what the topic keeps),
/// to its end.
pub(super) struct Unread {
    topic: String,
    partition: i32,
    start: i64,
    end: i64,
}

impl Unread {
    /// How many dead letters wait in it.
    pub(super) fn waiting(&self) -> i64 {
        (self.end - self.start).max(0)
    }
}

/// Every partition of the dead-letter topics under `config`'s prefix, as
/// `consumer` (of the `dead-letters` group) finds them; each request may
/// take `timeout`.
pub(super) fn unread(
    config: &KafkaConfig,
    consumer: &BaseConsumer,
    timeout: Duration,
) -> anyhow::Result<Vec<Unread>> {
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .context("reading the cluster's topics")?;
    let mut unread = Vec::new();
    for topic in metadata.topics() {
        let name = topic.name();
        if !name.starts_with(&config.topic_prefix) || !name.ends_with(DLQ_SUFFIX) {
            continue;
        }
        for partition in topic.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(name, partition.id(), timeout)
                .with_context(|| format!("reading the end of {name}"))?;
            let mut wanted = TopicPartitionList::new();
            wanted.add_partition(name, partition.id());
            let committed = consumer
                .committed_offsets(wanted, timeout)
                .ok()
                .and_then(|c| match c.find_partition(name, partition.id())?.offset() {
                    Offset::Offset(n) => Some(n),
                    _ => None,
                });
            unread.push(Unread {
                topic: name.to_string(),
                partition: partition.id(),
                start: committed.unwrap_or(low).max(low),
                end: high,
            });
        }
    }
    Ok(unread)
}

impl Store for KafkaStore {
    async fn take(&mut self, subscriptions: &[String]) -> anyhow::Result<Vec<Entry>> {
        let config = self.config.clone();
        let (messages, ends) = tokio::task::spawn_blocking(move || Self::read(&config))
            .await
            .context("the dead-letter reader panicked")??;
        self.ends = ends;
        let mut entries = Vec::new();
        for (place, message) in messages.iter().enumerate() {
            let event = OutboxEvent::from_broker(
                &Binding::KAFKA,
                |name| header(message, name),
                message.payload().unwrap_or_default(),
            );
            let entry = from_headers(|name| header(message, name), event, place);
            if subscriptions.contains(&entry.subscription) {
                entries.push(entry);
            }
        }
        self.taken = messages.into_iter().map(|m| (m, Fate::Kept)).collect();
        Ok(entries)
    }

    async fn remove(&mut self, entry: &Entry) -> anyhow::Result<()> {
        self.taken[entry.place].1 = Fate::Removed;
        Ok(())
    }

    async fn put_back(&mut self, entry: &Entry, why: &DeadLetter) -> anyhow::Result<()> {
        let headers = broker_headers(&entry.subscription, why, entry.first_failed.as_deref());
        let message = &self.taken[entry.place].0;
        rewrite(&self.producer, message, message.topic(), &headers).await?;
        self.taken[entry.place].1 = Fate::PutBack;
        Ok(())
    }

    async fn finish(self) -> anyhow::Result<()> {
        if self.taken.iter().all(|(_, fate)| *fate == Fate::Kept) {
            // Nothing changed (a listing): commit nothing.
            return Ok(());
        }
        for (message, fate) in &self.taken {
            if *fate == Fate::Kept {
                rewrite(&self.producer, message, message.topic(), &[]).await?;
            }
        }
        let mut offsets = TopicPartitionList::new();
        for ((topic, partition), end) in &self.ends {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(*end))?;
        }
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let consumer = Self::consumer(&config)?;
            consumer
                .commit(&offsets, CommitMode::Sync)
                .context("committing the dead-letter topics' offsets")
        })
        .await
        .context("the dead-letter committer panicked")?
    }
}
