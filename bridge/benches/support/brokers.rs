//! What the event benchmarks share: the transports a run covers, each on
//! names of the run's own, and the bridge's logs on demand.

use std::time::Duration;

use bridge::app::BrokerConfig;
use bridge::events::amqp::AmqpConfig;
use bridge::events::kafka::KafkaConfig;

/// The transports a run covers: `BENCH_BROKER` (embedded | amqp | kafka)
/// picks one; unset, all three run one after another, each against its
/// own fresh database, so one run prints every mode's figures.
pub fn modes() -> Vec<&'static str> {
    match std::env::var("BENCH_BROKER").as_deref() {
        Ok("amqp") => vec!["amqp"],
        Ok("kafka") => vec!["kafka"],
        Ok("embedded") => vec!["embedded"],
        Ok(other) => panic!("BENCH_BROKER={other}: expected embedded, amqp or kafka"),
        Err(_) => vec!["embedded", "amqp", "kafka"],
    }
}

/// The broker settings of `mode`, on names of this run's own.
pub fn broker_for(mode: &str) -> BrokerConfig {
    let run = uuid::Uuid::new_v4().simple().to_string();
    match mode {
        "amqp" => BrokerConfig::Amqp(AmqpConfig {
            exchange: format!("spinmesh.bench.{run}.events"),
            dead_letter_exchange: format!("spinmesh.bench.{run}.dlx"),
            queue_prefix: format!("spinmesh.bench.{run}."),
            ..AmqpConfig::default()
        }),
        "kafka" => BrokerConfig::Kafka(KafkaConfig {
            brokers: std::env::var("SPINMESH_KAFKA_BROKERS")
                .unwrap_or_else(|_| "127.0.0.1:9092".to_string()),
            topic_prefix: format!("bench{}-", &run[..12]),
            group_prefix: format!("bench{}.", &run[..12]),
            session_timeout: Duration::from_secs(3),
            metadata_refresh: Duration::from_millis(500),
            properties: kafka_properties(),
            ..KafkaConfig::default()
        }),
        _ => BrokerConfig::Embedded,
    }
}

/// `BENCH_KAFKA_PROPERTIES=name=value,...`: librdkafka settings, as
/// `--kafka-property` gives them to `bridge up` (e.g.
/// `fetch.wait.max.ms=10,linger.ms=0` to measure latency tunings).
fn kafka_properties() -> Vec<(String, String)> {
    std::env::var("BENCH_KAFKA_PROPERTIES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// `BENCH_LOG=<filter>` (e.g. `bridge=warn`) shows the bridge's logs.
pub fn init_logs() {
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
}
