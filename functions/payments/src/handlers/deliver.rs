//! `POST /payments/events`: `order.created` → one charge attempt through
//! the processor → one payment row and its `payment.*` event. Other types
//! are acknowledged and ignored.

use kit::cloudevent;
use kit::domain::{Amount, Timestamp};
use kit::idempotency::{Claim, Outcome};
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

/// Handles the delivery: 200 `{"status": "processed" | "duplicate" |
/// "ignored"}`, or 503 while the processor is unavailable (the bridge
/// retries).
///
/// # Errors
///
/// 401 on a bad signature, 400 on bad attributes, 422 on malformed
/// `order.created` data, 503 when the processor or the database is
/// unavailable, 500 on a bug.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let event = cloudevent::receive(req)?;
    if event.kind != "order.created" {
        return Outcome::Ignored.respond();
    }
    let order: OrderCreated = event.data_as()?;
    let expires_at = Timestamp::parse_rfc3339(&order.expires_at)
        .map_err(|e| ApiError::invalid("data.expires_at", e))?;
    let claim = Claim {
        consumer: CONSUMER,
        event_id: event.id,
    };
    let conn = db::connect()?;
    let token = order.payment_token.as_deref();
    // Only the transient-failure token keeps state between attempts; a
    // redelivery after its payment must not count as another attempt.
    // Every other redelivery is caught by the claim in `record`.
    let attempt = if processor::counts_attempts(token) {
        if ledger::exists(&conn, order.order_id)? {
            return Outcome::Duplicate.respond();
        }
        ledger::count_attempt(&conn, order.order_id)?
    } else {
        1
    };
    let decision = processor::decide(&processor::Request {
        token,
        amount: order.total,
        expired: Timestamp::now() > expires_at,
        attempt,
    });
    let result = match decision {
        Decision::Charge => Ok(()),
        Decision::Decline(reason) => Err(reason),
        Decision::Unavailable => {
            return Err(ApiError::unavailable(
                "payment processor",
                anyhow::anyhow!(
                    "order {}: transient processor failure (attempt {attempt})",
                    order.order_id
                ),
            ));
        }
    };
    let recorded = ledger::record(
        &conn,
        &claim,
        &ledger::Outcome {
            order_id: order.order_id,
            user_id: order.user_id,
            amount: order.total,
            currency: &order.currency,
            result,
            attempts: attempt,
        },
    )?;
    Outcome::from_claimed(recorded.is_some()).respond()
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
