//! Which topics a consumer group reads.
//!
//! Topics are per aggregate (`orders`), subscriptions per event type
//! (`order.created`), and nothing fixes which aggregate a type belongs to.
//! Reading every topic in every group made the broker serve, and the
//! bridge decode and filter, every event once per subscription (six times
//! on the store's saga) to deliver each to one or two. So the outbox relay
//! records each `(type, aggregate)` pair in `bridge_event_topics` before it
//! first publishes an event of it ([`Recorder`]), and each group reads only
//! the topics of the types it wants ([`Interest`]), rereading the record
//! every metadata refresh so a type's first event, in a topic the group did
//! not read yet, is found from the topic's start (a group has no offset
//! there). A subscription to `*`, or a group whose bridge could not read
//! the record when it started, reads every event topic, as before: the
//! record narrows what is fetched, never what is delivered.

use std::collections::{BTreeSet, HashMap};

use anyhow::Context;
use tokio::sync::Mutex;

use super::topics::topic_of;
use crate::event::OutboxEvent;
use crate::outbox::LazyClient;
use crate::subscription::{Subscription, TypePattern};
use spinmesh_config::database::Database;

/// The relay's side: records the pairs it publishes.
pub struct Recorder(Mutex<Recorded>);

struct Recorded {
    client: LazyClient,
    /// Pairs known to be recorded: type → aggregates.
    pairs: HashMap<String, Vec<String>>,
}

impl Recorder {
    /// Records into `database`'s `bridge_event_topics`.
    pub fn new(database: Database) -> Self {
        Self(Mutex::new(Recorded {
            client: LazyClient::new(database),
            pairs: HashMap::new(),
        }))
    }

    /// Records the pairs of `events` this process has not recorded yet
    /// and returns once they are committed: only then may they be
    /// published. After the first batches of each type this is a lookup.
    ///
    /// # Errors
    /// When the database cannot be reached or written.
    pub async fn record(&self, events: &[OutboxEvent]) -> anyhow::Result<()> {
        let mut recorded = self.0.lock().await;
        let Recorded { client, pairs } = &mut *recorded;
        let new: BTreeSet<(&str, &str)> = events
            .iter()
            .map(|e| (e.event_type.as_str(), e.aggregate.as_str()))
            .filter(|(ty, aggregate)| {
                !pairs
                    .get(*ty)
                    .is_some_and(|known| known.iter().any(|a| a == aggregate))
            })
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let (types, aggregates): (Vec<&str>, Vec<&str>) = new.iter().copied().unzip();
        client
            .run(async |client| {
                client
                    .execute(
                        "INSERT INTO bridge_event_topics (type, aggregate)
                         SELECT * FROM unnest($1::text[], $2::text[])
                         ON CONFLICT DO NOTHING",
                        &[&types, &aggregates],
                    )
                    .await
                    .context("recording which aggregates event types are published under")
            })
            .await?;
        for (ty, aggregate) in new {
            pairs
                .entry(ty.to_owned())
                .or_default()
                .push(aggregate.to_owned());
        }
        Ok(())
    }
}

/// What a consumer group subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest {
    /// Every event topic under the prefix.
    Every,
    /// These topics (none yet: nothing it wants was published).
    Topics(BTreeSet<String>),
}

impl Interest {
    /// The interest of `subscription`, from the record read through
    /// `client`.
    ///
    /// # Errors
    /// When the record cannot be read.
    pub(crate) async fn read(
        client: &mut LazyClient,
        subscription: &Subscription,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        if subscription.patterns.contains(&TypePattern::All) {
            return Ok(Self::Every);
        }
        let rows = client
            .run(async |client| {
                client
                    .query("SELECT type, aggregate FROM bridge_event_topics", &[])
                    .await
                    .context("reading which aggregates event types are published under")
            })
            .await?;
        Ok(Self::Topics(
            rows.iter()
                .filter(|row| subscription.wants(row.get(0)))
                .map(|row| topic_of(prefix, row.get(1)))
                .collect(),
        ))
    }

    /// Whether there is anything to read.
    pub fn reads_any(&self) -> bool {
        match self {
            Self::Every => true,
            Self::Topics(topics) => !topics.is_empty(),
        }
    }
}
