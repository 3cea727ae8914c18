//! `GET /payments/{order_id}`: an order's payment, for its buyer or an
//! admin.

use kit::{ApiError, bearer, db, json};
use spin_sdk::http::{Request, Response};

use crate::ledger;

/// Handles the request: 200 with the payment.
///
/// # Errors
///
/// 401 without a valid token; 404 when the order has no payment yet, is
/// unknown, or is someone else's (unless the caller is an admin);
/// 503/500 on database failure.
pub fn handle(req: &Request, raw_id: &str) -> Result<Response, ApiError> {
    let caller = bearer::authenticate(req)?;
    let not_found = || ApiError::NotFound(format!("no payment for order {raw_id}"));
    let order_id = raw_id.parse().map_err(|_| not_found())?;
    let conn = db::connect()?;
    let payment =
        ledger::find(&conn, order_id, caller.id, caller.is_admin())?.ok_or_else(not_found)?;
    json::respond(200, &payment)
}
