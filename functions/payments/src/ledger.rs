//! The `payments` table and the attempt counter.

use kit::ApiError;
use kit::db::{self, Connection, DbValue, Doing as _, ParameterValue, Statement, text};
use kit::domain::Amount;
use kit::idempotency::Claim;
use kit::outbox::{self, EventSpec};
use serde::Serialize;
use uuid::Uuid;

/// A payment as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Payment {
    /// The order paid for (the primary key: one payment per order).
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// Exact decimal text.
    pub amount: String,
    /// ISO 4217 code.
    pub currency: String,
    /// `succeeded` or `failed`.
    pub status: String,
    /// Why it failed (`card_declined`, ...).
    pub reason: Option<String>,
    /// The processor's charge reference, for a success.
    pub charge_id: Option<String>,
    /// How many times the processor was asked.
    pub attempts: i32,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// `payment.succeeded` (aggregate `payments`, subject = order id). Data,
/// version 1: `{"version": 1, "order_id", "user_id", "amount", "currency",
/// "charge_id"}`.
pub const PAYMENT_SUCCEEDED: EventSpec = EventSpec {
    source: "/payments",
    kind: "payment.succeeded",
    aggregate: "payments",
    subject: "order_id",
    version: 1,
    fields: &[
        ("order_id", "changed.order_id"),
        ("user_id", "changed.user_id"),
        ("amount", "changed.amount"),
        ("currency", "changed.currency"),
        ("charge_id", "changed.charge_id"),
    ],
    only_when: Some("changed.status = 'succeeded'"),
};

/// `payment.failed`. Data, version 1: `{"version": 1, "order_id",
/// "user_id", "amount", "currency", "reason"}`.
pub const PAYMENT_FAILED: EventSpec = EventSpec {
    source: "/payments",
    kind: "payment.failed",
    aggregate: "payments",
    subject: "order_id",
    version: 1,
    fields: &[
        ("order_id", "changed.order_id"),
        ("user_id", "changed.user_id"),
        ("amount", "changed.amount"),
        ("currency", "changed.currency"),
        ("reason", "changed.reason"),
    ],
    only_when: Some("changed.status = 'failed'"),
};

fn returning() -> String {
    format!(
        "order_id::text AS order_id, user_id::text AS user_id, amount::text AS amount, currency, \
         status, reason, charge_id, attempts, {} AS created_at",
        kit::rfc3339!("created_at")
    )
}

fn from_row(row: &[DbValue]) -> anyhow::Result<Payment> {
    let order_id: String = db::column(row, 0, "order_id")?;
    let user_id: String = db::column(row, 1, "user_id")?;
    Ok(Payment {
        order_id: order_id.parse()?,
        user_id: user_id.parse()?,
        amount: db::column(row, 2, "amount")?,
        currency: db::column(row, 3, "currency")?,
        status: db::column(row, 4, "status")?,
        reason: db::column(row, 5, "reason")?,
        charge_id: db::column(row, 6, "charge_id")?,
        attempts: db::column(row, 7, "attempts")?,
        created_at: db::column(row, 8, "created_at")?,
    })
}

/// Counts one more presentation of `order_id` to the processor; returns
/// the count including this one. Committed on its own, so a failed
/// attempt is remembered across redeliveries and restarts.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn count_attempt(conn: &Connection, order_id: Uuid) -> Result<u32, ApiError> {
    let sql = Statement::new(
        "INSERT INTO payment_attempts AS a (order_id, attempts) VALUES ($1::text::uuid, 1) \
         ON CONFLICT (order_id) DO UPDATE SET attempts = a.attempts + 1, updated_at = now() \
         RETURNING a.attempts",
    );
    let row = conn
        .one(&sql, &[text(order_id)])
        .doing("counting a payment attempt")?;
    let n: i32 = db::column(&row, 0, "attempts").map_err(ApiError::Internal)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Whether `order_id` already has a payment (a redelivery need not ask
/// the processor again).
///
/// # Errors
///
/// 503/500 on database failure.
pub fn exists(conn: &Connection, order_id: Uuid) -> Result<bool, ApiError> {
    let sql = Statement::new("SELECT 1 FROM payments WHERE order_id = $1::text::uuid");
    Ok(conn
        .optional(&sql, &[text(order_id)])
        .doing("looking up a payment")?
        .is_some())
}

/// The outcome to record for one delivered `order.created`.
#[derive(Debug, Clone)]
pub struct Outcome<'a> {
    /// The delivered event (the claim).
    pub event_id: Uuid,
    /// The order.
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// The amount.
    pub amount: Amount,
    /// Its currency.
    pub currency: &'a str,
    /// `Ok(())` when charged, `Err(reason)` when declined.
    pub result: Result<(), &'a str>,
    /// Presentations to the processor.
    pub attempts: u32,
}

impl Outcome<'_> {
    /// The row [`record_all`] reads for it.
    fn row(&self) -> serde_json::Value {
        let (status, reason) = match self.result {
            Ok(()) => ("succeeded", None),
            Err(why) => ("failed", Some(why)),
        };
        serde_json::json!({
            "event_id": self.event_id,
            "order_id": self.order_id,
            "user_id": self.user_id,
            "amount": self.amount.to_string(),
            "currency": self.currency,
            "status": status,
            "reason": reason,
            "attempts": self.attempts,
        })
    }
}

/// Records the payments of a batch of delivered events, each once: the
/// claims on the events, the rows (one per order) and their
/// `payment.succeeded` / `payment.failed` events are one statement, so
/// redelivering `order.created` any number of times (alone or within
/// any batch) charges once and emits once. Returns how many payments
/// were recorded now.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn record_all(
    conn: &Connection,
    consumer: &str,
    outcomes: &[Outcome],
) -> Result<usize, ApiError> {
    if outcomes.is_empty() {
        return Ok(0);
    }
    let [input, claim] = Claim::batch_ctes(
        "event_id uuid, order_id uuid, user_id uuid, amount numeric, currency text, \
         status text, reason text, attempts integer",
    );
    let change = format!(
        "INSERT INTO payments (order_id, user_id, amount, currency, status, reason, charge_id, attempts) \
         SELECT i.order_id, i.user_id, i.amount, i.currency, i.status, i.reason, \
           CASE WHEN i.status = 'succeeded' THEN 'ch_' || replace(gen_random_uuid()::text, '-', '') END, \
           i.attempts \
         FROM input i JOIN claim USING (event_id) \
         ON CONFLICT (order_id) DO NOTHING RETURNING {}",
        returning()
    );
    let statement = outbox::wrap_each(
        &[&PAYMENT_SUCCEEDED, &PAYMENT_FAILED],
        &[&input, &claim],
        &change,
    );
    let params = Claim::batch_params(consumer, outcomes.iter().map(Outcome::row).collect());
    let rows = conn.rows(&statement, &params).doing("recording payments")?;
    Ok(rows.len())
}

/// The payment of `order_id`, if `caller` may see it (its buyer, or
/// anyone when `any_owner`).
///
/// # Errors
///
/// 503/500 on database failure.
pub fn find(
    conn: &Connection,
    order_id: Uuid,
    caller: Uuid,
    any_owner: bool,
) -> Result<Option<Payment>, ApiError> {
    let sql = Statement::new(format!(
        "SELECT {} FROM payments WHERE order_id = $1::text::uuid \
         AND ($3::boolean OR user_id = $2::text::uuid)",
        returning()
    ));
    let params = [
        text(order_id),
        text(caller),
        ParameterValue::Boolean(any_owner),
    ];
    let rows = conn.rows(&sql, &params).doing("loading a payment")?;
    db::decode_first(&rows, from_row)
}
