//! spinmesh's bridge: the embedded Spin host (`bridge up`), database
//! migrations, key generation, the event path (outbox relay, brokers,
//! deliveries) and the Spin compatibility check (`bridge spin-check`).

pub mod admin;
pub mod app;
pub mod build;
pub mod database;
pub mod events;
pub mod host;
pub mod keys;
pub mod manifest;
pub mod migrate;
pub mod spin_check;
pub mod variables;
