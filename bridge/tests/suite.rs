//! The bridge's integration tests, as one test binary: each module is a
//! suite (the real host, real Postgres, Redis, RabbitMQ and Kafka, the
//! compiled components), and `common` is their shared harness.
//!
//! One binary instead of one per suite: the harness and the bridge are
//! compiled and linked once, which is most of a cold test build. nextest
//! still runs every test in its own process (`scripts/test`), so a test
//! owns the process-wide state it sets up (its log capture).

mod common;

mod amqp;
mod auth;
mod bindings;
mod dead_letters;
mod events;
mod gateway;
mod host;
mod kafka;
mod migrate;
mod mongo;
mod notify;
mod pipeline;
mod postgres_tls;
mod posts;
mod shutdown;
mod spin_check;
mod stock;
mod store;
mod telemetry;
