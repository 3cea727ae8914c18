//! The gateway surface every route shares: rate limits, system health,
//! and the OpenAPI document with its docs page.

mod health;
mod openapi;
mod rate_limits;
