//! `PATCH /products/{id}` (admin): changes a product.

use kit::cache::PRODUCTS;
use kit::domain::Role;
use kit::{ApiError, bearer, db, json};
use spin_sdk::http::{Request, Response};

use super::product_id;
use crate::catalog;
use crate::input::{Patch, PatchBody};

/// Handles the request: 200 with the product as it is now;
/// `product.updated` names the fields whose value changed.
///
/// # Errors
///
/// 401/403 as for every admin route, 404 for an unknown or archived
/// product, 400/413/422 for a bad body, 503/500 on database failure.
pub fn handle(req: &Request, raw_id: &str) -> Result<Response, ApiError> {
    bearer::authenticate(req)?.require(Role::Admin)?;
    let id = product_id(raw_id)?;
    let patch = Patch::try_from(json::parse::<PatchBody>(req)?)?;
    let conn = db::connect()?;
    let product = catalog::update(&conn, id, &patch)?
        .ok_or_else(|| ApiError::NotFound(format!("no product {id}")))?;
    PRODUCTS.bump_or_log();
    json::respond(200, &product)
}
