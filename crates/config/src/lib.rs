//! What the bridge is configured from, shared by the host, the event path
//! and the CLI: the application manifest (`spin.toml`), its variables, and
//! the database the bridge itself talks to.

#![deny(unsafe_code)]

pub mod database;
pub mod manifest;
pub mod redact;
pub mod variables;
