//! `GET /products/{id}`: one live product, cache-aside.

use kit::{ApiError, db};
use spin_sdk::http::{Request, Response};

use super::{cached_json, product_id, to_json};
use crate::{cached, catalog};

/// Handles the request: 200 with the product.
///
/// # Errors
///
/// 404 for an unknown or archived product (or an id that is not a UUID),
/// 503/500 on database failure.
pub fn handle(_: &Request, raw_id: &str) -> Result<Response, ApiError> {
    let id = product_id(raw_id)?;
    let (found, source) = cached::read(&cached::entry(&format!("item:{id}")), || {
        let conn = db::connect()?;
        catalog::find(&conn, id)?.map(|p| to_json(&p)).transpose()
    })?;
    let bytes = found.ok_or_else(|| ApiError::NotFound(format!("no product {id}")))?;
    Ok(cached_json(bytes, source))
}
