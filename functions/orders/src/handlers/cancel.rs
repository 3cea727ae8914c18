//! `POST /orders/{id}/cancel`: the buyer cancels a pending order; the
//! products function gives its stock back when `order.cancelled` reaches
//! it.

use kit::{ApiError, bearer, db, json};
use spin_sdk::http::{Request, Response};

use super::{not_found, order_id};
use crate::store;

fn not_pending(status: &str) -> ApiError {
    ApiError::Refused {
        slug: "order-not-pending",
        title: "Order is not pending",
        detail: format!("the order is {status}; only a pending order can be cancelled"),
    }
}

/// Handles the request: 200 with the cancelled order.
///
/// # Errors
///
/// 401 without a valid token; 404 for an unknown order or someone
/// else's; 409 (`order-not-pending`) once it is paid, failed or already
/// cancelled; 503/500 on database failure.
pub fn handle(req: &Request, raw_id: &str) -> Result<Response, ApiError> {
    let caller = bearer::authenticate(req)?;
    let id = order_id(raw_id)?;
    let conn = db::connect()?;
    let order = store::find(&conn, id, caller.id, false)?.ok_or_else(|| not_found(id))?;
    if order.status != "pending" {
        return Err(not_pending(&order.status));
    }
    match store::cancel(&conn, id, caller.id)? {
        Some(cancelled) => json::respond(200, &cancelled),
        // Paid or expired between the read and the update.
        None => {
            let now = store::find(&conn, id, caller.id, false)?.ok_or_else(|| not_found(id))?;
            Err(not_pending(&now.status))
        }
    }
}
