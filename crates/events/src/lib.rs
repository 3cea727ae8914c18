//! The event path's bridge side: subscriptions from `spin.toml`, sources
//! that read events (the embedded outbox reader, the RabbitMQ and Kafka
//! consumers fed by the outbox relay), the delivery policy, and the
//! invokers that call functions.

#![deny(unsafe_code)]

pub mod amqp;
pub mod clock;
pub mod dispatch;
pub mod embedded;
pub mod event;
pub mod invoke;
pub mod kafka;
pub mod lanes;
pub mod outbox;
pub mod outcome;
pub mod relay;
pub mod replay;
pub mod subscription;
pub mod wake;
