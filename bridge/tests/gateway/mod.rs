//! The gateway surface every route shares: rate limits.

mod rate_limits;
