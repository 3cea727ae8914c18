//! `kit`: what every spinmesh Spin component shares.
//!
//! The edges of a request live here so handlers stay short: parsing bodies
//! ([`json`]), turning failures into RFC 9457 responses ([`problem`]),
//! authenticating callers ([`jwt`], [`bearer`]), reaching Postgres and Redis
//! through Spin's interfaces ([`db`], [`cache`]) and reading Spin variables
//! ([`config`]). Domain newtypes ([`domain`]) parse input once so the rest of
//! the code never sees a raw string.
//!
//! Everything except the thin SDK calls is plain Rust, so `cargo test -p kit`
//! runs natively.

pub mod bearer;
pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod json;
pub mod jwt;
pub mod problem;
pub mod router;

pub use problem::{ApiError, FieldError};
