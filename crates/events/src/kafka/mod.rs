//! Kafka through rdkafka (librdkafka): a topic per aggregate keyed by the
//! aggregate id, an idempotent producer for the outbox relay, a consumer
//! group per subscription that stores an offset only once every event
//! before it was answered, and a `<topic>.dlq` topic for dead letters.

mod config;
mod consumer;
mod handover;
pub(crate) mod interest;
mod offsets;
pub(crate) mod publisher;
pub(crate) mod topics;

pub use config::KafkaConfig;
pub use consumer::KafkaConsumer;
pub use publisher::KafkaPublisher;
pub use topics::Topics;
