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

    /// Settings every client shares, with the tunables `tuned` adds for
    /// its role; then the operator's properties, which override any of
    /// those. What the delivery guarantees rest on is set by the caller
    /// afterwards, so no property can change it.
    fn with_properties(&self, tuned: impl FnOnce(&mut ClientConfig)) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", "spinmesh-bridge")
            .set(
                "topic.metadata.refresh.interval.ms",
                millis(self.metadata_refresh),
            )
            .set("log_level", "4");
        tuned(&mut c);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// Settings every client shares, and the operator's properties.
    pub(crate) fn client(&self) -> ClientConfig {
        self.with_properties(|_| {})
    }

    /// An idempotent producer: acks from all in-sync replicas, retries
    /// without duplicates or reordering, small batches for latency
    /// (`linger.ms` and `message.timeout.ms` can be tuned).
    pub(super) fn producer(&self) -> ClientConfig {
        let mut c = self.with_properties(|c| {
            c.set("linger.ms", "2").set("message.timeout.ms", "30000");
        });
        c.set("enable.idempotence", "true").set("acks", "all");
        c
    }

    /// A subscription's consumer: offsets are stored by the bridge after
    /// the function answered and committed in the background from there;
    /// a new group starts at the beginning of each topic.
    ///
    /// `auto.commit.interval.ms`, `fetch.wait.max.ms` and the session
    /// timings can be tuned; the group, the offset store and where a new
    /// group starts cannot.
    pub(super) fn consumer(&self, subscription: &str) -> ClientConfig {
        let session = self.session_timeout.max(Duration::from_millis(1000));
        let mut c = self.with_properties(|c| {
            c.set("auto.commit.interval.ms", "500")
                .set("session.timeout.ms", millis(session))
                .set("heartbeat.interval.ms", millis(session / 3))
                .set("fetch.wait.max.ms", "50");
        });
        c.set("group.id", self.group(subscription))
            .set("statistics.interval.ms", millis(STATISTICS_EVERY))
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        c
    }
}

/// How often a consumer reports its statistics (its lag, see
/// [`super::handover::Handover`]).
pub const STATISTICS_EVERY: Duration = crate::status::EVERY;

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_tune_clients_but_not_the_delivery_guarantees() {
        let config = KafkaConfig {
            properties: [
                ("fetch.wait.max.ms", "10"),
                ("linger.ms", "0"),
                ("security.protocol", "SASL_SSL"),
                ("enable.auto.offset.store", "true"),
                ("acks", "1"),
                ("group.id", "elsewhere"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec(),
            ..KafkaConfig::default()
        };
        let consumer = config.consumer("payments");
        assert_eq!(consumer.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(consumer.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(
            consumer.get("group.id"),
            Some(config.group("payments").as_str())
        );
        let producer = config.producer();
        assert_eq!(producer.get("linger.ms"), Some("0"));
        assert_eq!(producer.get("acks"), Some("all"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));

        let defaults = KafkaConfig::default();
        assert_eq!(
            defaults.consumer("payments").get("fetch.wait.max.ms"),
            Some("50")
        );
        assert_eq!(defaults.producer().get("linger.ms"), Some("2"));
    }
}
