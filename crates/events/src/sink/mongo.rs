//! The MongoDB sink: every event a document, for the tracking and audit
//! trails Spin functions cannot write themselves (Spin has no MongoDB
//! interface, so this is the bridge's job).
//!
//! A document is the event's CloudEvents attributes with `_id` = the event
//! id, `time` a BSON date, and `data` a sub-document (not a string):
//!
//! ```json
//! { "_id": "0b6f…", "specversion": "1.0", "type": "user.registered",
//!   "source": "/auth", "subject": "user/42", "aggregate": "user",
//!   "time": ISODate("2026-12-03T10:00:00.123Z"),
//!   "datacontenttype": "application/json", "data": { "user_id": 42, … } }
//! ```
//!
//! Inserts are `insert_many`, unordered. A duplicate key (`E11000`, the
//! same event again after a redelivery) counts as stored, which makes the
//! effect exactly once. A write the server refuses for another reason is
//! a refusal (the batch is then stored one by one, and the one document
//! it refuses goes to the dead letters); anything else (the server
//! unreachable, a write concern not met) is retried with backoff like any
//! failed delivery. The indexes the sink needs are made on first use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use futures::future::BoxFuture;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, IndexModel};

use super::Sink;
use crate::event::OutboxEvent;
use crate::outcome::Attempt;
use spinmesh_config::redact::redact;

/// The MongoDB duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// How long to look for a usable server before an attempt counts as
/// failed (the driver's default, 30 s, would hold a delivery that long),
/// unless the URI sets `serverSelectionTimeoutMS`.
const SERVER_SELECTION: Duration = Duration::from_secs(5);

/// Where a MongoDB sink writes: `[application.tool.bridge.sink.<name>]`
/// with `kind = "mongo"` (see [`crate::subscription`]).
#[derive(Clone, PartialEq, Eq)]
pub struct MongoConfig {
    /// `mongodb://…` or `mongodb+srv://…`, from the sink's URL variable.
    pub url: String,
    /// Database name.
    pub database: String,
    /// Collection name.
    pub collection: String,
}

impl std::fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoConfig")
            .field("url", &redact(&self.url))
            .field("database", &self.database)
            .field("collection", &self.collection)
            .finish()
    }
}

/// Stores events in one collection.
pub struct MongoSink {
    collection: Collection<Document>,
    indexed: AtomicBool,
    timeout: Duration,
}

impl MongoSink {
    /// Parses the URI and sets up the client (no connection is made yet:
    /// the driver connects on first use and reconnects by itself).
    ///
    /// # Errors
    /// When the URI is malformed (or a `mongodb+srv` name cannot be
    /// resolved).
    /// Each attempt (index creation and insert) is given up after
    /// `timeout` and retried: a write in flight when the server went away
    /// can otherwise wait on its connection indefinitely.
    pub async fn connect(config: &MongoConfig, timeout: Duration) -> anyhow::Result<Self> {
        let mut options = ClientOptions::parse(&config.url)
            .await
            .with_context(|| format!("MongoDB URI {}", redact(&config.url)))?;
        options
            .app_name
            .get_or_insert_with(|| "spinmesh-bridge".to_string());
        options
            .server_selection_timeout
            .get_or_insert(SERVER_SELECTION);
        options.connect_timeout.get_or_insert(SERVER_SELECTION);
        let client = Client::with_options(options).context("configuring the MongoDB client")?;
        let collection = client
            .database(&config.database)
            .collection::<Document>(&config.collection);
        Ok(Self {
            collection,
            indexed: AtomicBool::new(false),
            timeout,
        })
    }

    /// Creates [`indexes`] once.
    async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        if self.indexed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.collection.create_indexes(indexes()).await?;
        self.indexed.store(true, Ordering::Release);
        Ok(())
    }

    async fn store(&self, events: &[OutboxEvent]) -> Attempt {
        match tokio::time::timeout(self.timeout, self.write(events)).await {
            Ok(attempt) => attempt,
            Err(_) => Attempt::failed(format!("MongoDB: no answer within {:?}", self.timeout)),
        }
    }

    async fn write(&self, events: &[OutboxEvent]) -> Attempt {
        if let Err(err) = self.ensure_indexes().await {
            return Attempt::failed(format!("creating the collection's indexes: {err}"));
        }
        let mut documents = Vec::with_capacity(events.len());
        for event in events {
            match document(event) {
                Ok(d) => documents.push(d),
                Err(err) => return Attempt::refused(format!("event {}: {err:#}", event.id)),
            }
        }
        match self.collection.insert_many(documents).ordered(false).await {
            Ok(_) => Attempt::delivered(),
            Err(err) => outcome_of(&err),
        }
    }
}

impl Sink for MongoSink {
    fn deliver<'a>(&'a self, events: &'a [OutboxEvent]) -> BoxFuture<'a, Attempt> {
        self.store(events).boxed()
    }
}

/// The indexes a tracking collection gets: an aggregate's history by
/// subject and time, and events of a type by time.
pub fn indexes() -> [IndexModel; 2] {
    [
        IndexModel::builder()
            .keys(doc! { "subject": 1, "time": 1 })
            .build(),
        IndexModel::builder()
            .keys(doc! { "type": 1, "time": 1 })
            .build(),
    ]
}

/// What a failed `insert_many` means for the events: duplicates only →
/// stored; a write the server refused → refused; anything else → retry.
fn outcome_of(err: &mongodb::error::Error) -> Attempt {
    let write_errors: Vec<(i32, &str)> = match err.kind.as_ref() {
        ErrorKind::InsertMany(failure) if failure.write_concern_error.is_none() => failure
            .write_errors
            .iter()
            .flatten()
            .map(|e| (e.code, e.message.as_str()))
            .collect(),
        ErrorKind::Write(WriteFailure::WriteError(e)) => vec![(e.code, e.message.as_str())],
        ErrorKind::InvalidArgument { message, .. } => {
            return Attempt::refused(format!("MongoDB refused the documents: {message}"));
        }
        _ => return Attempt::failed(format!("MongoDB: {err}")),
    };
    match write_errors.iter().find(|(code, _)| *code != DUPLICATE_KEY) {
        None if !write_errors.is_empty() => Attempt::delivered(),
        None => Attempt::failed(format!("MongoDB: {err}")),
        Some((code, message)) => {
            Attempt::refused(format!("MongoDB refused a document ({code}): {message}"))
        }
    }
}

/// The event as a document (see the module doc).
///
/// # Errors
/// When its time is not RFC 3339 or its data cannot be represented in
/// BSON (an integer beyond 64 bits).
pub fn document(event: &OutboxEvent) -> anyhow::Result<Document> {
    let time = bson::DateTime::parse_rfc3339_str(&event.time)
        .with_context(|| format!("time {:?}", event.time))?;
    let data = match serde_json::from_str::<serde_json::Value>(&event.data) {
        Ok(json) => bson::to_bson(&json).context("data")?,
        // Not JSON (the outbox column is JSON, so only a foreign event):
        // kept as the text it was.
        Err(_) => Bson::String(event.data.clone()),
    };
    let mut document = doc! {
        "_id": event.id.to_string(),
        "specversion": "1.0",
        "type": &event.event_type,
        "source": &event.source,
        "subject": &event.subject,
        "aggregate": &event.aggregate,
        "time": time,
        "datacontenttype": "application/json",
    };
    if let Some(schema) = &event.dataschema {
        document.insert("dataschema", schema);
    }
    document.insert("data", data);
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> OutboxEvent {
        OutboxEvent {
            position: 1,
            txid: "1".into(),
            id: uuid::Uuid::new_v4(),
            source: "/auth".into(),
            event_type: "user.registered".into(),
            subject: "user/42".into(),
            aggregate: "user".into(),
            time: "2026-12-03T10:00:00.123456Z".into(),
            dataschema: None,
            data: data.into(),
            traceparent: None,
        }
    }

    #[test]
    fn a_document_has_typed_fields() {
        let e =
            event(r#"{"user_id": 42, "email": "a@b.c", "tags": ["x"], "big": 9007199254740993}"#);
        let d = document(&e).unwrap();
        assert_eq!(d.get_str("_id").unwrap(), e.id.to_string());
        assert_eq!(d.get_str("type").unwrap(), "user.registered");
        let time = d.get_datetime("time").unwrap();
        assert_eq!(time.timestamp_millis(), 1_796_292_000_123);
        let data = d.get_document("data").unwrap();
        assert_eq!(data.get_i64("user_id").unwrap(), 42);
        assert_eq!(data.get_i64("big").unwrap(), 9_007_199_254_740_993);
        assert_eq!(data.get_array("tags").unwrap().len(), 1);
        assert!(!d.contains_key("dataschema"));
    }

    #[test]
    fn an_unreadable_time_is_refused() {
        let mut e = event("{}");
        e.time = "yesterday".into();
        assert!(document(&e).is_err());
    }
}
