//! Applying a delivered event exactly once.
//!
//! Delivery is at-least-once, so a consumer records the event id in
//! `processed_events` in the same statement as its effect, and makes the
//! effect conditional on that record being new:
//!
//! ```sql
//! WITH claim AS (INSERT INTO processed_events (consumer, event_id)
//!                VALUES ($1, $2::uuid) ON CONFLICT DO NOTHING RETURNING 1),
//!      effect AS (INSERT INTO ... SELECT ... WHERE EXISTS (SELECT 1 FROM claim))
//! SELECT EXISTS (SELECT 1 FROM claim)
//! ```
//!
//! A redelivery finds the claim taken, so the effect touches nothing, and
//! the handler still answers 2xx (`{"status":"duplicate"}`) so the bridge
//! stops retrying. A failure rolls back claim and effect together.

use serde::Serialize;
use spin_sdk::http::Response;
use uuid::Uuid;

use crate::db::ParameterValue;
use crate::json;
use crate::problem::ApiError;

/// Condition that holds only on the first delivery; use it in the effect's
/// `WHERE` (or select it to learn whether the effect ran).
pub const CLAIMED: &str = "EXISTS (SELECT 1 FROM claim)";

/// A consumer's claim on one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The consumer, e.g. `analytics`.
    pub consumer: &'static str,
    /// The CloudEvents `id`.
    pub event_id: Uuid,
}

impl Claim {
    /// How many parameters [`Claim::cte`] uses: `$1` (consumer) and `$2`
    /// (event id). The effect's own parameters start at `$3`.
    pub const PARAMS: usize = 2;

    /// The `claim AS (...)` CTE; it returns one row only if this consumer
    /// had not processed the event yet.
    pub const fn cte() -> &'static str {
        "claim AS (INSERT INTO processed_events (consumer, event_id) \
         VALUES ($1, $2::uuid) ON CONFLICT DO NOTHING RETURNING 1)"
    }

    /// `$1`, `$2` for [`Claim::cte`], followed by the effect's `rest`.
    pub fn params(&self, rest: impl IntoIterator<Item = ParameterValue>) -> Vec<ParameterValue> {
        let mut params = vec![
            ParameterValue::Str(self.consumer.to_owned()),
            ParameterValue::from(self.event_id),
        ];
        params.extend(rest);
        params
    }
}

/// What became of a delivery; every variant is a success for the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The effect was applied now.
    Processed,
    /// The event had been processed before; nothing changed.
    Duplicate,
    /// The consumer does not act on this event type.
    Ignored,
}

impl Outcome {
    /// [`Outcome::Processed`] if the claim was new, else
    /// [`Outcome::Duplicate`].
    pub fn from_claimed(claimed: bool) -> Self {
        if claimed {
            Self::Processed
        } else {
            Self::Duplicate
        }
    }

    /// 200 `{"status": "processed" | "duplicate" | "ignored"}`.
    ///
    /// # Errors
    ///
    /// 500 if serialization fails (a bug).
    pub fn respond(self) -> Result<Response, ApiError> {
        json::respond(200, &serde_json::json!({ "status": self }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_takes_the_first_two_parameters() {
        let claim = Claim {
            consumer: "analytics",
            event_id: Uuid::nil(),
        };
        let params = claim.params([ParameterValue::Str("x".into())]);
        assert_eq!(params.len(), Claim::PARAMS + 1);
        assert!(matches!(&params[0], ParameterValue::Str(c) if c == "analytics"));
        assert!(matches!(params[1], ParameterValue::Uuid(_)));
        assert!(Claim::cte().contains("($1, $2::uuid)"));
    }

    #[test]
    fn outcomes_render_lowercase() {
        assert_eq!(
            serde_json::to_value(Outcome::from_claimed(false)).unwrap(),
            "duplicate"
        );
        assert_eq!(
            serde_json::to_value(Outcome::from_claimed(true)).unwrap(),
            "processed"
        );
    }
}
