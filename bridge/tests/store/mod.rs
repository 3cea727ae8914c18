//! The store through the embedded host against the real Postgres and
//! Redis: stock races, idempotency keys, authorization, the product cache,
//! exactly-once payments and bad input. The saga across transports is in
//! `crate::common::saga`, run by the events, amqp and kafka suites.

mod authorization;
mod bad_input;
mod cache;
mod exactly_once;
mod idempotency;
mod legacy;
mod race;
