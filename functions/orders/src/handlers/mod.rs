//! One module per operation: parse → apply → respond.

pub mod cancel;
pub mod deliver;
pub mod get;
pub mod health;
pub mod list_mine;
pub mod place;

use kit::ApiError;
use uuid::Uuid;

/// The `{id}` of an order route; anything that is not a UUID names no
/// order, so it is a 404 like an unknown one (or someone else's).
fn order_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| not_found(raw))
}

/// The one answer for "no such order" and "not yours": no existence leak.
fn not_found(id: impl std::fmt::Display) -> ApiError {
    ApiError::NotFound(format!("no order {id}"))
}
