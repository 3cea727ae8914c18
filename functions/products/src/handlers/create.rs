//! `POST /products` (admin): adds a product.

use kit::cache::PRODUCTS;
use kit::domain::Role;
use kit::{ApiError, bearer, db, json};
use spin_sdk::http::{Request, Response};

use crate::catalog;
use crate::input::{NewProduct, NewProductBody};

/// Handles the request: 201 with the product; `product.created` is
/// emitted in the same statement.
///
/// # Errors
///
/// 401 without a valid token, 403 for a non-admin, 400/413/422 for a bad
/// body, 503/500 on database failure.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    bearer::authenticate(req)?.require(Role::Admin)?;
    let new = NewProduct::try_from(json::parse::<NewProductBody>(req)?)?;
    let conn = db::connect()?;
    let product = catalog::create(&conn, &new)?;
    PRODUCTS.bump_or_log();
    json::respond(201, &product)
}
