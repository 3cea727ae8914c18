//! `kit`: what every spinmesh Spin component shares.
//!
//! The edges of a request live here so handlers stay short: parsing bodies
//! ([`json`]), turning failures into RFC 9457 responses ([`problem`]),
//! authenticating callers ([`jwt`], [`bearer`]), reaching Postgres and Redis
//! through Spin's interfaces ([`db`], [`cache`]) and reading Spin variables
//! ([`config`]). Every request enters through [`gate`], which routes it
//! ([`router`]) and counts it against the rate limits ([`rate_limit`]).
//! Domain newtypes ([`domain`]) parse input once so the rest of
//! the code never sees a raw string. Each component's API description
//! lives beside it, checked against its routing table ([`openapi`]).
//!
//! The event path has its three guest-side pieces here too: emitting an
//! event in the same statement as the change ([`outbox`]), receiving a
//! signed delivery ([`cloudevent`]) and applying it exactly once
//! ([`idempotency`]).
//!
//! Everything except the thin SDK calls is plain Rust, so `cargo test -p kit`
//! runs natively.

#![deny(unsafe_code)]

pub mod bearer;
pub mod cache;
pub mod client_addr;
pub mod cloudevent;
pub mod config;
pub mod db;
pub mod digest;
pub mod domain;
pub mod gate;
pub mod html;
pub mod idempotency;
pub mod json;
pub mod jwt;
pub mod openapi;
pub mod outbox;
pub mod paging;
pub mod problem;
pub mod query;
pub mod rate_limit;
pub mod router;
pub mod trace;

pub use problem::{ApiError, FieldError};
