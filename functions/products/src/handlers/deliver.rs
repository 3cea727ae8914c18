//! `POST /products/events`: compensation. `order.cancelled` and
//! `order.payment_failed` give the order's reserved stock back, once per
//! event and at most once per order. Other types are acknowledged and
//! ignored.

use kit::cache::PRODUCTS;
use kit::cloudevent;
use kit::idempotency::{Claim, Outcome};
use kit::{ApiError, db};
use serde::Deserialize;
use spin_sdk::http::{Request, Response};
use uuid::Uuid;

/// This consumer's name in `processed_events`.
pub const CONSUMER: &str = "products";

/// What this consumer reads of an order event.
#[derive(Debug, Deserialize)]
struct OrderEnded {
    order_id: Uuid,
}

/// Handles the delivery: 200 `{"status":"processed"|"duplicate"|"ignored"}`.
///
/// # Errors
///
/// 401 on a bad signature, 400 on bad attributes, 422 on data without an
/// `order_id`, 503/500 on database failure (the bridge retries).
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let event = cloudevent::receive(req)?;
    if !matches!(
        event.kind.as_str(),
        "order.cancelled" | "order.payment_failed"
    ) {
        return Outcome::Ignored.respond();
    }
    let ended: OrderEnded = event.data_as()?;
    let claim = Claim {
        consumer: CONSUMER,
        event_id: event.id,
    };
    let conn = db::connect()?;
    let units = crate::catalog::release_for(&conn, &claim, ended.order_id)?;
    if units.is_some_and(|n| n > 0) {
        PRODUCTS.bump_or_log();
    }
    Outcome::from_claimed(units.is_some()).respond()
}
