//! spinmesh's bridge: the command line and what only it does (the app's
//! lifecycle, migrations, keys, builds, the Spin compatibility check).
//!
//! The larger parts are crates of their own so a change recompiles only
//! its part: [`spinmesh_config`] (manifest, variables, the bridge's
//! database), [`spinmesh_host`] (the embedded Spin host) and
//! [`spinmesh_events`] (the event path). They are re-exported here under
//! the names the bridge has always used.

#![deny(unsafe_code)]

pub mod admin;
pub mod app;
pub mod build;
pub mod keys;
pub mod migrate;
pub mod spin_check;
pub mod telemetry;

pub use spinmesh_config::{database, manifest, variables};
pub use spinmesh_events as events;
pub use spinmesh_host as host;
