//! One module per operation: parse → apply → respond.

pub mod create;
pub mod delete;
pub mod deliver;
pub mod get;
pub mod health;
pub mod list;
pub mod update;

use kit::ApiError;
use spin_sdk::http::Response;
use uuid::Uuid;

use crate::cached::Source;

/// The `{id}` of a product route; anything that is not a UUID names no
/// product, so it is a 404 like an unknown one.
fn product_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no product {raw}")))
}

/// A 200 JSON answer from already serialized bytes, saying where it came
/// from.
fn cached_json(bytes: Vec<u8>, source: Source) -> Response {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("x-cache", source.as_str())
        .body(bytes)
        .build()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("serializing a response: {e}")))
}
