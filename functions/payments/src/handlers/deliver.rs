//! `POST /payments/events`: `order.created` → one charge attempt through
//! the processor → one payment row and its `payment.*` event. Other types
//! are acknowledged and ignored.
//!
//! The subscription takes batches (`batch` in `spin.toml`): the charges of
//! a batch are recorded in one statement with their claims and events. An
//! event whose data is malformed refuses the batch (422), so the bridge
//! delivers its events one by one and dead-letters only that one. A
//! transient processor failure (`tok_error`) answers 503 after the rest of
//! the batch is recorded: the bridge delivers the batch again, the
//! recorded events are duplicates by then, and the failed one is tried
//! once more.

use kit::cloudevent::{self, CloudEvent};
use kit::domain::{Amount, Timestamp};
use kit::idempotency::Tally;
use kit::{ApiError, db};
use serde::Deserialize;
use spin_sdk::http::{Request, Response};
use uuid::Uuid;

use crate::ledger;
use crate::processor::{self, Decision};

/// This consumer's name in `processed_events`.
pub const CONSUMER: &str = "payments";

/// What this consumer reads of `order.created` data (version 1).
#[derive(Debug, Deserialize)]
struct OrderCreated {
    order_id: Uuid,
    user_id: Uuid,
    total: Amount,
    currency: String,
    #[serde(default)]
    payment_token: Option<String>,
    expires_at: String,
}

/// An `order.created` read from its event.
struct Presented {
    event_id: Uuid,
    order: OrderCreated,
    expires_at: Timestamp,
}

/// Reads the order an `order.created` event presents; `None` for other
/// types.
///
/// # Errors
///
/// 422 on malformed data.
fn presented(event: &CloudEvent) -> Result<Option<Presented>, ApiError> {
    if event.kind != "order.created" {
        return Ok(None);
    }
    let order: OrderCreated = event.data_as()?;
    let expires_at = Timestamp::parse_rfc3339(&order.expires_at)
        .map_err(|e| ApiError::invalid("data.expires_at", e))?;
    Ok(Some(Presented {
        event_id: event.id,
        order,
        expires_at,
    }))
}

/// Handles the delivery: 200 `{"status": "processed" | "duplicate" |
/// "ignored"}` for one event, `{"status": "processed", "events": n,
/// "recorded": k}` for a batch, or 503 while the processor is unavailable
/// (the bridge retries).
///
/// # Errors
///
/// 401 on a bad signature, 400 on bad attributes, 422 on malformed
/// `order.created` data, 503 when the processor or the database is
/// unavailable, 500 on a bug.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let events = cloudevent::receive_all(req)?;
    let orders = events
        .iter()
        .map(presented)
        .collect::<Result<Vec<_>, _>>()?;
    let orders: Vec<Presented> = orders.into_iter().flatten().collect();
    let mut tally = Tally {
        events: events.len(),
        ignored: events.len() - orders.len(),
        applied: 0,
    };
    if orders.is_empty() {
        return tally.respond();
    }
    let conn = db::connect()?;
    let now = Timestamp::now();
    let mut outcomes = Vec::with_capacity(orders.len());
    let mut unavailable = None;
    for Presented {
        event_id,
        order,
        expires_at,
    } in &orders
    {
        let token = order.payment_token.as_deref();
        // Only the transient-failure token keeps state between attempts; a
        // redelivery after its payment must not count as another attempt.
        // Every other redelivery is caught by the claim in `record_all`.
        let attempt = if processor::counts_attempts(token) {
            if ledger::exists(&conn, order.order_id)? {
                continue;
            }
            ledger::count_attempt(&conn, order.order_id)?
        } else {
            1
        };
        let result = match processor::decide(&processor::Request {
            token,
            amount: order.total,
            expired: now > *expires_at,
            attempt,
        }) {
            Decision::Charge => Ok(()),
            Decision::Decline(reason) => Err(reason),
            Decision::Unavailable => {
                unavailable = Some(ApiError::unavailable(
                    "payment processor",
                    anyhow::anyhow!(
                        "order {}: transient processor failure (attempt {attempt})",
                        order.order_id
                    ),
                ));
                continue;
            }
        };
        outcomes.push(ledger::Outcome {
            event_id: *event_id,
            order_id: order.order_id,
            user_id: order.user_id,
            amount: order.total,
            currency: &order.currency,
            result,
            attempts: attempt,
        });
    }
    tally.applied = ledger::record_all(&conn, CONSUMER, &outcomes)?;
    match unavailable {
        Some(err) => Err(err),
        None => tally.respond(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_created_data_parses_with_exact_totals() {
        let data = serde_json::json!({
            "version": 1,
            "order_id": "7d2c5f7e-0000-4000-8000-000000000001",
            "user_id": "7d2c5f7e-0000-4000-8000-000000000002",
            "items": [],
            "total": "19.99",
            "currency": "USD",
            "payment_token": "tok_visa",
            "expires_at": "2024-05-01T12:15:00.000000Z"
        });
        let order: OrderCreated = serde_json::from_value(data).unwrap();
        assert_eq!(order.total.cents(), 1999);
    }
}
