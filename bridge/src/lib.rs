//! spinmesh's bridge: the embedded Spin host (`bridge up`), database
//! migrations and key generation. The event relay lands here too.

pub mod app;
pub mod build;
pub mod events;
pub mod host;
pub mod keys;
pub mod manifest;
pub mod migrate;
pub mod variables;
