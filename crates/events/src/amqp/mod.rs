//! RabbitMQ (AMQP 0-9-1) through lapin: a durable topic exchange with the
//! event type as routing key, a durable queue per subscription, publisher
//! confirms, prefetch, ack after the function answered, and a dead-letter
//! exchange carrying why an event died.

mod config;
mod consumer;
pub(crate) mod headers;
pub(crate) mod publisher;
pub mod topology;

pub use config::AmqpConfig;
pub use consumer::AmqpConsumer;
pub use publisher::AmqpPublisher;
