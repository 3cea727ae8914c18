//! `GET /orders/{id}`: one order, for its buyer or an admin.

use kit::{ApiError, bearer, db, json};
use spin_sdk::http::{Request, Response};

use super::{not_found, order_id};
use crate::store;

/// Handles the request: 200 with the order and its payment status.
///
/// # Errors
///
/// 401 without a valid token; 404 for an unknown order and for someone
/// else's (unless the caller is an admin); 503/500 on database failure.
pub fn handle(req: &Request, raw_id: &str) -> Result<Response, ApiError> {
    let caller = bearer::authenticate(req)?;
    let id = order_id(raw_id)?;
    let conn = db::connect()?;
    let order =
        store::find(&conn, id, caller.id, caller.is_admin())?.ok_or_else(|| not_found(id))?;
    json::respond(200, &order)
}
