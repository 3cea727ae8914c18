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
//!
//! A batch of events is claimed the same way in one statement
//! ([`Claim::batch_ctes`]): its events become the rows of an `input` CTE,
//! `claim` returns the ids that are new, and the effect joins the two, so
//! a batch that mixes new and redelivered events applies only the new.

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

    /// The CTEs claiming a batch: `input`, the batch's rows decoded from
    /// `$2` (see [`Claim::batch_params`]) with `columns` (which must
    /// include `event_id uuid`), one row per event id; then `claim`, the
    /// `event_id`s this consumer (`$1`) had not processed, so
    /// `input JOIN claim USING (event_id)` is what to apply now.
    pub fn batch_ctes(columns: &str) -> [String; 2] {
        [
            format!(
                "input AS (SELECT DISTINCT ON (x.event_id) x.* \
                 FROM json_to_recordset($2::text::json) AS x({columns}) ORDER BY x.event_id)"
            ),
            "claim AS (INSERT INTO processed_events (consumer, event_id) \
             SELECT $1::text, event_id FROM input ON CONFLICT DO NOTHING RETURNING event_id)"
                .to_owned(),
        ]
    }

    /// `$1` (the consumer) and `$2` (the batch's rows, JSON objects whose
    /// keys are the columns given to [`Claim::batch_ctes`]) for a batch
    /// claim; the effect's own parameters start at `$3`.
    pub fn batch_params(consumer: &str, rows: Vec<serde_json::Value>) -> Vec<ParameterValue> {
        vec![
            ParameterValue::Str(consumer.to_owned()),
            ParameterValue::Str(serde_json::Value::Array(rows).to_string()),
        ]
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

/// What the delivery of one event or of a batch came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Events delivered.
    pub events: usize,
    /// Events this consumer does not act on.
    pub ignored: usize,
    /// Events applied now; the others had been processed before.
    pub applied: usize,
}

impl Tally {
    /// 200: for one event its [`Outcome`] (`{"status": "processed" |
    /// "duplicate" | "ignored"}`), for a batch `{"status": "processed",
    /// "events": n, "recorded": k}` with `k` the events applied now.
    ///
    /// # Errors
    ///
    /// 500 if serialization fails (a bug).
    pub fn respond(self) -> Result<Response, ApiError> {
        if self.events == 1 {
            return if self.ignored == 1 {
                Outcome::Ignored
            } else {
                Outcome::from_claimed(self.applied == 1)
            }
            .respond();
        }
        json::respond(
            200,
            &serde_json::json!({
                "status": Outcome::Processed,
                "events": self.events,
                "recorded": self.applied,
            }),
        )
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
    fn a_batch_claim_reads_its_rows_from_the_second_parameter() {
        let [input, claim] = Claim::batch_ctes("event_id uuid, n int");
        assert!(input.starts_with("input AS (SELECT DISTINCT ON (x.event_id)"));
        assert!(input.contains("json_to_recordset($2::text::json) AS x(event_id uuid, n int)"));
        assert!(claim.contains("SELECT $1::text, event_id FROM input"));
        let params = Claim::batch_params("orders", vec![serde_json::json!({"n": 1})]);
        assert!(matches!(&params[1], ParameterValue::Str(rows) if rows == r#"[{"n":1}]"#));
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
