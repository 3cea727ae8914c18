//! `POST /orders/events`: the order side of the saga.
//!
//! - `payment.succeeded` → a pending order becomes `paid` (`order.paid`);
//! - `payment.failed` → it becomes `payment_failed`
//!   (`order.payment_failed`, which makes the products function release
//!   its stock), or `cancelled` (`order.cancelled`, reason
//!   `payment_timeout`) when payments refused it for a closed window;
//! - `bridge.tick` (the bridge's clock, see `tick_every_secs` in
//!   `spin.toml`) → every pending order past its `expires_at` is
//!   cancelled (`order.cancelled`, reason `payment_timeout`).
//!
//! Payment events are applied once per event id (the claim shares the
//! statement with the change and its event); the sweep needs no claim,
//! since it only ever moves pending orders.

use kit::cloudevent;
use kit::idempotency::{Claim, Outcome};
use kit::{ApiError, db, json};
use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::{Request, Response};
use uuid::Uuid;

use crate::store::{self, PaymentResult};

/// This consumer's name in `processed_events`.
pub const CONSUMER: &str = "orders";

/// The bridge's clock event type.
pub const TICK: &str = "bridge.tick";

/// Most orders one tick cancels; the next tick takes the rest.
const SWEEP_LIMIT: i64 = 500;

/// What this consumer reads of `payment.*` data.
#[derive(Debug, Deserialize)]
struct PaymentEvent {
    order_id: Uuid,
    #[serde(default)]
    reason: Option<String>,
}

/// Handles the delivery: 200 `{"status": ...}`.
///
/// # Errors
///
/// 401 on a bad signature, 400 on bad attributes, 422 on data without an
/// `order_id`, 503/500 on database failure (the bridge retries).
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let event = cloudevent::receive(req)?;
    let result = match event.kind.as_str() {
        "payment.succeeded" => PaymentResult::Succeeded,
        "payment.failed" => {
            let data: PaymentEvent = event.data_as()?;
            match data.reason {
                Some(why) if why == store::WINDOW_EXPIRED => PaymentResult::Expired(why),
                Some(why) => PaymentResult::Failed(why),
                None => PaymentResult::Failed("declined".to_owned()),
            }
        }
        TICK => {
            let conn = db::connect()?;
            let cancelled = store::expire(&conn, SWEEP_LIMIT)?;
            return json::respond(
                200,
                &json!({ "status": "processed", "cancelled": cancelled }),
            );
        }
        _ => return Outcome::Ignored.respond(),
    };
    let data: PaymentEvent = event.data_as()?;
    let claim = Claim {
        consumer: CONSUMER,
        event_id: event.id,
    };
    let conn = db::connect()?;
    let applied = store::apply_payment(&conn, &claim, data.order_id, &result)?;
    if applied.new && !applied.moved {
        eprintln!(
            "order {}: {} arrived after the order left pending; status kept",
            data.order_id, event.kind
        );
    }
    Outcome::from_claimed(applied.new).respond()
}
