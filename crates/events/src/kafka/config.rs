//! Where and how to talk to Kafka, and the librdkafka settings derived
//! from it for each client the bridge makes.

use std::time::Duration;

use rdkafka::ClientConfig;

/// Kafka settings (`bridge up --broker kafka`).
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    pub brokers: String,
    /// Prepended to every topic name (`<prefix><aggregate>`), so several
    /// applications or test runs can share a cluster.
    pub topic_prefix: String,
    /// Prepended to each subscription's consumer group id.
    pub group_prefix: String,
    /// Partitions of topics the bridge creates. Parallelism across bridge
    /// replicas is bounded by it; it cannot grow later on every broker.
    pub partitions: i32,
    /// Replication factor of created topics; `-1` takes the broker's default.
    pub replication: i32,
    /// Consumer group session timeout (a dead consumer's partitions move
    /// after it). Joining a group takes a fraction of it on some brokers.
    pub session_timeout: Duration,
    /// How often consumers look for new topics (a new aggregate's first
    /// events wait at most this long).
    pub metadata_refresh: Duration,
    /// Events a subscription's consumer holds unanswered at once.
    pub max_in_flight: usize,
    /// How long a consumer losing partitions in a rebalance waits for
    /// their deliveries in flight before giving them up (see
    /// `kafka::handover`). Keep it well under `max.poll.interval.ms`.
    pub handover_timeout: Duration,
    /// Extra librdkafka properties for every client (`security.protocol`,
    /// `sasl.*`, `ssl.*` … for real clusters).
    pub properties: Vec<(String, String)>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_string(),
            topic_prefix: String::new(),
            group_prefix: "spinmesh.".to_string(),
            partitions: 8,
            replication: -1,
            session_timeout: Duration::from_secs(10),
            metadata_refresh: Duration::from_secs(5),
            max_in_flight: 512,
            handover_timeout: Duration::from_secs(10),
            properties: Vec::new(),
        }
    }
}

impl KafkaConfig {
    /// The consumer group of a subscription.
    pub fn group(&self, subscription: &str) -> String {
        format!("{}{subscription}", self.group_prefix)
    }

    /// Settings every client shares.
    pub(crate) fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", "spinmesh-bridge")
            .set(
                "topic.metadata.refresh.interval.ms",
                millis(self.metadata_refresh),
            )
            .set("log_level", "4");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// An idempotent producer: acks from all in-sync replicas, retries
    /// without duplicates or reordering, small batches for latency.
    pub(super) fn producer(&self) -> ClientConfig {
        let mut c = self.client();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "30000");
        c
    }

    /// A subscription's consumer: offsets are stored by the bridge after
    /// the function answered and committed in the background from there;
    /// a new group starts at the beginning of each topic.
    pub(super) fn consumer(&self, subscription: &str) -> ClientConfig {
        let mut c = self.client();
        let session = self.session_timeout.max(Duration::from_millis(1000));
        c.set("group.id", self.group(subscription))
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "500")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", millis(session))
            .set("heartbeat.interval.ms", millis(session / 3))
            .set("fetch.wait.max.ms", "50")
            .set("enable.partition.eof", "false");
        c
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}
