//! `DELETE /products/{id}` (admin): takes a product out of the catalog.

use kit::cache::PRODUCTS;
use kit::domain::Role;
use kit::{ApiError, bearer, db};
use spin_sdk::http::{Request, Response};

use super::product_id;
use crate::catalog;

/// Handles the request: 204. A product some order held is archived (it
/// leaves listings and cannot be ordered, and old orders still name it);
/// one nobody ordered is deleted. Either way `product.archived` is
/// emitted.
///
/// # Errors
///
/// 401/403 as for every admin route, 404 for an unknown or already
/// archived product, 503/500 on database failure.
pub fn handle(req: &Request, raw_id: &str) -> Result<Response, ApiError> {
    bearer::authenticate(req)?.require(Role::Admin)?;
    let id = product_id(raw_id)?;
    let conn = db::connect()?;
    catalog::archive(&conn, id)?.ok_or_else(|| ApiError::NotFound(format!("no product {id}")))?;
    PRODUCTS.bump_or_log();
    Ok(Response::builder().status(204).body(Vec::new()).build())
}
