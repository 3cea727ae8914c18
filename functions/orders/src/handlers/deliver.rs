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
//!
//! The subscription takes batches (`batch` in `spin.toml`): a batch's
//! payment results are applied in one statement, or in as few as keep
//! each order once per statement when a batch names an order twice (in
//! the batch's order, so the first result wins as it would one by one).

use kit::cloudevent::{self, CloudEvent};
use kit::idempotency::Tally;
use kit::{ApiError, db, json};
use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::{Request, Response};
use uuid::Uuid;

use crate::store::{self, PaymentApplied, PaymentResult};

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

/// What a delivered event asks of this consumer.
enum Delivered {
    /// A payment result to apply.
    Payment(PaymentApplied),
    /// The clock: sweep expired orders.
    Tick,
    /// A type this consumer does not act on.
    Ignored,
}

/// Reads one delivered event.
///
/// # Errors
///
/// 422 on payment data without an `order_id`.
fn delivered(event: &CloudEvent) -> Result<Delivered, ApiError> {
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
        TICK => return Ok(Delivered::Tick),
        _ => return Ok(Delivered::Ignored),
    };
    let data: PaymentEvent = event.data_as()?;
    Ok(Delivered::Payment(PaymentApplied {
        event_id: event.id,
        order_id: data.order_id,
        result,
    }))
}

/// Splits `payments` (in order) into runs that name each order at most
/// once.
fn runs(payments: Vec<PaymentApplied>) -> Vec<Vec<PaymentApplied>> {
    let mut runs: Vec<Vec<PaymentApplied>> = vec![Vec::new()];
    for payment in payments {
        let current = runs.last_mut().expect("never empty");
        if current.iter().any(|p| p.order_id == payment.order_id) {
            runs.push(vec![payment]);
        } else {
            current.push(payment);
        }
    }
    runs
}

/// Handles the delivery: 200 `{"status": ...}` (for the clock also
/// `"cancelled": n`; for a batch `"events"` and `"recorded"`).
///
/// # Errors
///
/// 401 on a bad signature, 400 on bad attributes, 422 on data without an
/// `order_id`, 503/500 on database failure (the bridge retries).
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let events = cloudevent::receive_all(req)?;
    let delivered = events
        .iter()
        .map(delivered)
        .collect::<Result<Vec<_>, _>>()?;
    let mut tally = Tally {
        events: events.len(),
        ..Tally::default()
    };
    let mut payments = Vec::new();
    let mut ticks = 0;
    for d in delivered {
        match d {
            Delivered::Payment(p) => payments.push(p),
            Delivered::Tick => ticks += 1,
            Delivered::Ignored => tally.ignored += 1,
        }
    }
    if payments.is_empty() && ticks == 0 {
        return tally.respond();
    }
    let conn = db::connect()?;
    for run in runs(payments) {
        for applied in store::apply_payments(&conn, CONSUMER, &run)? {
            tally.applied += 1;
            if !applied.moved {
                eprintln!(
                    "order {}: a payment result arrived after the order left pending; status kept",
                    applied.order_id
                );
            }
        }
    }
    if ticks > 0 {
        let cancelled = store::expire(&conn, SWEEP_LIMIT)?;
        if events.len() == 1 {
            return json::respond(
                200,
                &json!({ "status": "processed", "cancelled": cancelled }),
            );
        }
        tally.applied += ticks;
    }
    tally.respond()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paid(order: u128) -> PaymentApplied {
        PaymentApplied {
            event_id: Uuid::new_v4(),
            order_id: Uuid::from_u128(order),
            result: PaymentResult::Succeeded,
        }
    }

    #[test]
    fn a_batch_naming_an_order_twice_is_applied_in_runs_in_order() {
        let batch = vec![paid(1), paid(2), paid(1), paid(3), paid(2)];
        let ids: Vec<Vec<u128>> = runs(batch)
            .iter()
            .map(|run| run.iter().map(|p| p.order_id.as_u128()).collect())
            .collect();
        assert_eq!(ids, vec![vec![1, 2], vec![1, 3, 2]]);
    }

    #[test]
    fn distinct_orders_are_one_run() {
        assert_eq!(runs(vec![paid(1), paid(2), paid(3)]).len(), 1);
        assert_eq!(runs(Vec::new()).len(), 1);
    }
}
