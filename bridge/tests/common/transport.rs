//! The three ways events travel (embedded, RabbitMQ, Kafka) behind one
//! test-side interface: fresh broker names per test, a runner that can be
//! stopped or killed, reading the dead letters back, replaying published
//! events, and RabbitMQ teardown (also when the test panics).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bridge::app::BrokerConfig;
use bridge::events::EventPath;
use bridge::events::amqp::AmqpConfig;
use bridge::events::dispatch::DispatchConfig;
use bridge::events::event::{Binding, OutboxEvent, Signer};
use bridge::events::invoke::Invoker;
use bridge::events::kafka::{KafkaConfig, KafkaPublisher};
use bridge::events::relay::Publish;
use bridge::events::subscription::Subscription;
use bridge::manifest::Manifest;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::TestApp;
use super::cloudevents::BrokerMessage;

/// How events get from the outbox to the functions in a test.
pub enum Transport {
    Embedded,
    Amqp(AmqpConfig),
    Kafka(KafkaConfig),
}

/// One dead letter, whatever held it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub event_id: String,
    pub subscription: String,
    pub status: String,
    pub attempts: String,
    pub error: String,
}

impl Transport {
    /// RabbitMQ with this test's own exchanges and queues.
    pub fn amqp() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self::Amqp(AmqpConfig {
            exchange: format!("spinmesh.test.{id}.events"),
            dead_letter_exchange: format!("spinmesh.test.{id}.dlx"),
            queue_prefix: format!("spinmesh.test.{id}."),
            ..AmqpConfig::default()
        })
    }

    /// Kafka with this test's own topics and groups, and timings suited to
    /// a single local broker.
    pub fn kafka() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self::Kafka(KafkaConfig {
            brokers: std::env::var("SPINMESH_KAFKA_BROKERS")
                .unwrap_or_else(|_| "127.0.0.1:9092".to_string()),
            topic_prefix: format!("t{}-", &id[..12]),
            group_prefix: format!("t{}.", &id[..12]),
            partitions: 4,
            session_timeout: Duration::from_millis(3000),
            metadata_refresh: Duration::from_millis(300),
            ..KafkaConfig::default()
        })
    }

    pub fn broker(&self) -> BrokerConfig {
        match self {
            Self::Embedded => BrokerConfig::Embedded,
            Self::Amqp(c) => BrokerConfig::Amqp(c.clone()),
            Self::Kafka(c) => BrokerConfig::Kafka(c.clone()),
        }
    }

    /// Starts moving events for `app` (whose manifest is `manifest`)
    /// through this transport.
    pub fn start(
        &self,
        app: &TestApp,
        manifest: &Path,
        invoker: Invoker,
        signer: Option<Signer>,
        config: DispatchConfig,
    ) -> Runner {
        self.start_without(app, manifest, invoker, signer, config, &[])
    }

    /// Where the events stand, for a failure message: the probe's distinct
    /// deliveries, then [`Transport::describe_for`] the probe.
    pub async fn describe(&self, db: &Client) -> String {
        let delivered = count_text(db, "SELECT count(DISTINCT event_id) FROM probe_attempts").await;
        format!(
            "{delivered} distinct events delivered to the probe; {}",
            self.describe_for(db, "probe").await
        )
    }

    /// Where the events stand for `subscription`, for a failure message:
    /// the outbox and the readers' cursors (the relay's with a broker);
    /// for RabbitMQ the subscription's queue, its ready messages and
    /// consumers (unacknowledged ones held by a consumer that is gone would
    /// show as fewer ready than missing); for Kafka each partition's end
    /// and the subscription's group's committed offset there.
    pub async fn describe_for(&self, db: &Client, subscription: &str) -> String {
        let outbox = count_text(db, "SELECT count(*) FROM outbox").await;
        let cursors: Vec<String> = db
            .query(
                "SELECT subscription || ' at ' || txid::text || '/' || position FROM bridge_cursors",
                &[],
            )
            .await
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            .unwrap_or_default();
        let mut out = format!("the outbox holds {outbox} events; cursors {cursors:?}");
        match self {
            Self::Embedded => {}
            Self::Amqp(config) => {
                out.push_str(&format!(
                    "; {}",
                    amqp_queue_state(config, subscription).await
                ));
            }
            Self::Kafka(config) => {
                let (config, subscription) = (config.clone(), subscription.to_owned());
                let state =
                    tokio::task::spawn_blocking(move || kafka_group_state(&config, &subscription))
                        .await
                        .unwrap_or_else(|e| format!("({e})"));
                out.push_str(&format!("; {state}"));
            }
        }
        out
    }

    /// Like [`Transport::start`], leaving out the named subscriptions (as
    /// if those functions were down for good).
    pub fn start_without(
        &self,
        app: &TestApp,
        manifest: &Path,
        invoker: Invoker,
        signer: Option<Signer>,
        config: DispatchConfig,
        without: &[&str],
    ) -> Runner {
        let host = app.running.as_ref().unwrap().host.clone();
        let manifest = Manifest::load(manifest).unwrap();
        let (mut subscriptions, own_signer) = bridge::app::event_wiring(&manifest, &host).unwrap();
        subscriptions.retain(|s| !without.contains(&s.name.as_str()));
        self.start_subscriptions(
            app,
            subscriptions,
            invoker,
            signer.unwrap_or(own_signer),
            config,
        )
    }

    /// Starts moving events for `app` to exactly these subscriptions
    /// (functions' or sinks).
    pub fn start_subscriptions(
        &self,
        app: &TestApp,
        subscriptions: Vec<Subscription>,
        invoker: Invoker,
        signer: Signer,
        config: DispatchConfig,
    ) -> Runner {
        let (tx, rx) = watch::channel(false);
        let path = EventPath {
            broker: self.broker(),
            database: super::database(&app.database),
            subscriptions,
            invoker,
            signer,
            config,
        };
        let task = tokio::spawn(bridge::events::run(path, rx));
        Runner { stop: tx, task }
    }

    /// Every dead letter, waiting until there are at least `n`.
    pub async fn dead_letters(&self, db: &Client, n: usize) -> Vec<DeadLetter> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut found = Vec::new();
        while Instant::now() < deadline {
            let batch = self.read_dead_letters(db).await;
            match self {
                // Taken off the queue: keep what earlier reads got.
                Self::Amqp(_) => found.extend(batch),
                // Read whole each time.
                Self::Embedded | Self::Kafka(_) => found = batch,
            }
            if found.len() >= n {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} dead letters, expected {n}: {found:?}", found.len());
    }

    async fn read_dead_letters(&self, db: &Client) -> Vec<DeadLetter> {
        match self {
            Self::Embedded => db
                .query(
                    "SELECT event_id::text, subscription, coalesce(status::text, ''),
                            attempts::text, error FROM bridge_dead_letters",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| DeadLetter {
                    event_id: r.get(0),
                    subscription: r.get(1),
                    status: r.get(2),
                    attempts: r.get(3),
                    error: r.get(4),
                })
                .collect(),
            Self::Amqp(config) => amqp_dead_letters(config).await,
            Self::Kafka(config) => kafka_dead_letters(config).await,
        }
    }

    /// Makes the transport deliver every event published so far once more,
    /// as after a crash between delivering and recording it. A broker gets
    /// the outbox's events published again; the embedded runner (stopped
    /// and restarted around this) has its cursors rewound.
    pub async fn replay(&self, db: &Client) {
        match self {
            Self::Embedded => {
                db.execute(
                    "UPDATE bridge_cursors SET txid = '0'::xid8, position = 0",
                    &[],
                )
                .await
                .unwrap();
            }
            Self::Amqp(config) => {
                let publisher = bridge::events::amqp::AmqpPublisher::connect(config, &[])
                    .await
                    .unwrap();
                publisher.publish(&outbox_events(db).await).await.unwrap();
            }
            Self::Kafka(config) => {
                let publisher = KafkaPublisher::connect(config).unwrap();
                publisher.publish(&outbox_events(db).await).await.unwrap();
            }
        }
    }
}

/// Every subscription a test app may declare (the application's and the
/// probe's): whose RabbitMQ queues a test reads and removes.
const SUBSCRIPTIONS: &[&str] = &[
    "analytics",
    "notifications",
    "orders",
    "payments",
    "posts",
    "probe",
    "products",
    "sink.tracking",
];

/// Removes a test's broker topology.
async fn teardown(broker: BrokerConfig) {
    match broker {
        BrokerConfig::Embedded => {}
        BrokerConfig::Amqp(config) => {
            let _ = bridge::events::amqp::topology::delete(&config, SUBSCRIPTIONS).await;
        }
        // Kafka topics stay: deleting them on the development broker
        // (Tansu) makes librdkafka crash on the metadata that follows
        // (SIGSEGV in rd_kafka_metadata_cache_find). The broker keeps
        // them in memory only, and each test's names are its own.
        BrokerConfig::Kafka(_) => {}
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        let broker = self.broker();
        // Drop cannot await: tear down from a runtime of its own (this
        // also runs when the test failed).
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(teardown(broker));
        })
        .join();
    }
}

/// A running event path.
pub struct Runner {
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Runner {
    /// Asks it to stop and waits until it has.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the event path stops when asked")
            .unwrap()
            .expect("the event path ran");
    }

    /// Aborts it at once, as a crash would.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The outbox, as the relay reads it.
async fn outbox_events(db: &Client) -> Vec<OutboxEvent> {
    db.query(
        "SELECT position, txid::text, id, source, type, subject, aggregate,
                to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                dataschema, data::text, traceparent
           FROM outbox ORDER BY txid, position",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| OutboxEvent {
        position: r.get(0),
        txid: r.get(1),
        id: r.get(2),
        source: r.get(3),
        event_type: r.get(4),
        subject: r.get(5),
        aggregate: r.get(6),
        time: r.get(7),
        dataschema: r.get(8),
        data: r.get(9),
        traceparent: r.get(10),
    })
    .collect()
}

fn dead_letter_from(binding: &Binding, header: impl Fn(&str) -> Option<String>) -> DeadLetter {
    let text = |k: &str| header(k).unwrap_or_default();
    DeadLetter {
        event_id: text(binding.id),
        subscription: text("x-spinmesh-subscription"),
        status: text("x-spinmesh-status"),
        attempts: text("x-spinmesh-attempts"),
        error: text("x-spinmesh-error"),
    }
}

/// Takes what is in the dead-letter queues now.
/// A queue's ready messages and consumers, as RabbitMQ reports them.
async fn amqp_queue_state(config: &AmqpConfig, subscription: &str) -> String {
    use lapin::options::QueueDeclareOptions;
    let queue = config.queue(subscription);
    let state = async {
        let conn =
            lapin::Connection::connect(&config.url, lapin::ConnectionProperties::default()).await?;
        let ch = conn.create_channel().await?;
        let q = ch
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await?;
        let _ = conn.close(200, "done".into()).await;
        Ok::<_, lapin::Error>((q.message_count(), q.consumer_count()))
    };
    match state.await {
        Ok((ready, consumers)) => {
            format!("queue {queue}: {ready} ready, {consumers} consumers")
        }
        Err(err) => format!("queue {queue}: {err}"),
    }
}

/// The number `sql` counts, or the error in parentheses (for a failure
/// message, which must not fail itself).
async fn count_text(db: &Client, sql: &str) -> String {
    match db.query_one(sql, &[]).await {
        Ok(row) => row.get::<_, i64>(0).to_string(),
        Err(err) => format!("({err})"),
    }
}

/// For each partition of the test's event topics: its end offset and
/// where `subscription`'s consumer group committed (blocking).
fn kafka_group_state(config: &KafkaConfig, subscription: &str) -> String {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, TopicPartitionList};
    let group = config.group(subscription);
    let timeout = Duration::from_secs(5);
    let state = || -> Result<String, rdkafka::error::KafkaError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .create()?;
        let metadata = consumer.fetch_metadata(None, timeout)?;
        let mut partitions = TopicPartitionList::new();
        for topic in metadata.topics() {
            if topic.name().starts_with(&config.topic_prefix) {
                for p in topic.partitions() {
                    partitions.add_partition(topic.name(), p.id());
                }
            }
        }
        let committed = consumer.committed_offsets(partitions, timeout)?;
        let mut lines = Vec::new();
        for e in committed.elements() {
            let (_, end) = consumer.fetch_watermarks(e.topic(), e.partition(), timeout)?;
            lines.push(format!(
                "{}[{}] end {end} committed {:?}",
                e.topic(),
                e.partition(),
                e.offset()
            ));
        }
        let members = match consumer.fetch_group_list(Some(&group), timeout) {
            Ok(list) => list
                .groups()
                .iter()
                .map(|g| format!("state {}, {} members", g.state(), g.members().len()))
                .collect::<Vec<_>>()
                .join("; "),
            Err(err) => format!("({err})"),
        };
        Ok(format!("{members}; {}", lines.join(", ")))
    };
    match state() {
        Ok(partitions) => format!("group {group}: {partitions}"),
        Err(err) => format!("group {group}: ({err})"),
    }
}

async fn amqp_dead_letters(config: &AmqpConfig) -> Vec<DeadLetter> {
    use lapin::options::BasicGetOptions;
    let conn = lapin::Connection::connect(&config.url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let mut found = Vec::new();
    for sub in SUBSCRIPTIONS {
        // A queue this test's app does not declare closes the channel.
        let ch = conn.create_channel().await.unwrap();
        let queue = config.dead_letter_queue(sub);
        while let Ok(Some(msg)) = ch
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
        {
            let headers = amqp_headers(&msg.delivery.properties);
            found.push(dead_letter_from(&Binding::AMQP, |k| {
                headers.get(k).cloned()
            }));
        }
    }
    let _ = conn.close(200, "done".into()).await;
    found
}

/// Reads every `.dlq` topic of the test from the beginning (a fresh,
/// assignment-only reader, so no group join is waited for). Returns all
/// of them each time; the caller's count decides when enough arrived.
async fn kafka_dead_letters(config: &KafkaConfig) -> Vec<DeadLetter> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", format!("{}dlq-reader", config.group_prefix))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for topic in metadata.topics() {
            if topic.name().starts_with(&config.topic_prefix) && topic.name().ends_with(".dlq") {
                for p in topic.partitions() {
                    assignment
                        .add_partition_offset(topic.name(), p.id(), Offset::Beginning)
                        .unwrap();
                }
            }
        }
        if assignment.count() == 0 {
            return Vec::new();
        }
        consumer.assign(&assignment).unwrap();
        let mut found = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let headers = kafka_headers(&m);
                    found.push(dead_letter_from(&Binding::KAFKA, |k| {
                        headers.get(k).cloned()
                    }));
                }
                Some(Err(e)) => panic!("reading dead letters: {e}"),
                None => {}
            }
        }
        found
    })
    .await
    .unwrap()
}

impl Transport {
    /// Publishes `event` as the outbox relay does and returns the message
    /// as the broker then hands it to any consumer.
    pub async fn published_message(&self, event: &OutboxEvent) -> BrokerMessage {
        match self {
            Self::Embedded => panic!("the embedded transport publishes nothing"),
            Self::Amqp(config) => {
                use bridge::events::subscription::TypePattern;
                use lapin::options::BasicGetOptions;
                let reader = Subscription {
                    name: "probe".into(),
                    patterns: vec![TypePattern::All],
                    destination: bridge::events::subscription::Destination::Function {
                        route: "/probe/events".into(),
                    },
                    max_attempts: 1,
                    batch: 1,
                    tick: None,
                };
                let publisher = bridge::events::amqp::AmqpPublisher::connect(config, &[reader])
                    .await
                    .unwrap();
                publisher
                    .publish(std::slice::from_ref(event))
                    .await
                    .unwrap();
                let conn =
                    lapin::Connection::connect(&config.url, lapin::ConnectionProperties::default())
                        .await
                        .unwrap();
                let ch = conn.create_channel().await.unwrap();
                let msg = ch
                    .basic_get(
                        config.queue("probe").as_str().into(),
                        BasicGetOptions { no_ack: true },
                    )
                    .await
                    .unwrap()
                    .expect("the published message is in the queue");
                let props = &msg.delivery.properties;
                let headers = amqp_headers(props);
                let message = BrokerMessage {
                    prefix: "cloudEvents:",
                    headers,
                    content_type: props.content_type().as_ref().map(|c| c.to_string()),
                    body: msg.delivery.data.clone(),
                };
                let _ = conn.close(200, "done".into()).await;
                message
            }
            Self::Kafka(config) => {
                use rdkafka::consumer::{BaseConsumer, Consumer};
                use rdkafka::message::Message;
                use rdkafka::{ClientConfig, Offset, TopicPartitionList};
                let publisher = KafkaPublisher::connect(config).unwrap();
                publisher
                    .publish(std::slice::from_ref(event))
                    .await
                    .unwrap();
                let topic = bridge::events::kafka::Topics::new(config)
                    .unwrap()
                    .of_aggregate(&event.aggregate);
                let config = config.clone();
                tokio::task::spawn_blocking(move || {
                    let consumer: BaseConsumer = ClientConfig::new()
                        .set("bootstrap.servers", &config.brokers)
                        .set("group.id", format!("{}sdk-reader", config.group_prefix))
                        .set("enable.auto.commit", "false")
                        .create()
                        .unwrap();
                    let metadata = consumer
                        .fetch_metadata(Some(&topic), Duration::from_secs(5))
                        .unwrap();
                    let mut assignment = TopicPartitionList::new();
                    for p in metadata.topics()[0].partitions() {
                        assignment
                            .add_partition_offset(&topic, p.id(), Offset::Beginning)
                            .unwrap();
                    }
                    consumer.assign(&assignment).unwrap();
                    let deadline = Instant::now() + Duration::from_secs(20);
                    loop {
                        assert!(Instant::now() < deadline, "no message on {topic}");
                        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
                            continue;
                        };
                        let m = m.unwrap();
                        let mut headers = kafka_headers(&m);
                        return BrokerMessage {
                            prefix: "ce_",
                            content_type: headers.remove("content-type"),
                            headers,
                            body: m.payload().unwrap_or_default().to_vec(),
                        };
                    }
                })
                .await
                .unwrap()
            }
        }
    }
}

/// A Kafka message's headers as text.
fn kafka_headers(message: &impl rdkafka::message::Message) -> HashMap<String, String> {
    use rdkafka::message::Headers;
    message
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An AMQP message's text headers.
fn amqp_headers(properties: &lapin::BasicProperties) -> HashMap<String, String> {
    properties
        .headers()
        .clone()
        .unwrap_or_default()
        .inner()
        .iter()
        .filter_map(|(k, v)| match v {
            lapin::types::AMQPValue::LongString(s) => Some((
                k.to_string(),
                String::from_utf8_lossy(s.as_bytes()).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

impl Transport {
    /// The `bridge` command-line flags naming this transport's store.
    pub fn cli_args(&self) -> Vec<String> {
        match self {
            Self::Embedded => vec!["--broker".into(), "embedded".into()],
            Self::Amqp(c) => vec![
                "--broker".into(),
                "amqp".into(),
                "--amqp-url".into(),
                c.url.clone(),
                "--amqp-exchange".into(),
                c.exchange.clone(),
                "--amqp-dead-letter-exchange".into(),
                c.dead_letter_exchange.clone(),
                "--amqp-queue-prefix".into(),
                c.queue_prefix.clone(),
            ],
            Self::Kafka(c) => vec![
                "--broker".into(),
                "kafka".into(),
                "--kafka-brokers".into(),
                c.brokers.clone(),
                "--kafka-topic-prefix".into(),
                c.topic_prefix.clone(),
                "--kafka-group-prefix".into(),
                c.group_prefix.clone(),
            ],
        }
    }
}
