//! The gateway surface every route shares: rate limits and system health.

mod health;
mod rate_limits;
