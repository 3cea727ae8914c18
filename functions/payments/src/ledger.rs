//! The `payments` table and the attempt counter.

use kit::ApiError;
use kit::db::{self, Connection, DbValue, Doing as _, ParameterValue, Statement, text};
use kit::domain::Amount;
use kit::idempotency::{CLAIMED, Claim};
use kit::outbox::EventSpec;
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
    only_when: None,
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
    only_when: None,
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

/// The outcome to record.
#[derive(Debug, Clone)]
pub struct Outcome<'a> {
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

/// Records the payment and its event once: the claim on the delivered
/// event, the row (one per order) and `payment.succeeded` /
/// `payment.failed` are one statement, so redelivering `order.created`
/// any number of times charges once and emits once. `None` when it was
/// recorded before.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn record(
    conn: &Connection,
    claim: &Claim,
    outcome: &Outcome,
) -> Result<Option<Payment>, ApiError> {
    let (status, reason, spec) = match outcome.result {
        Ok(()) => ("succeeded", ParameterValue::DbNull, &PAYMENT_SUCCEEDED),
        Err(why) => ("failed", text(why), &PAYMENT_FAILED),
    };
    let change = format!(
        "INSERT INTO payments (order_id, user_id, amount, currency, status, reason, charge_id, attempts) \
         SELECT $3::text::uuid, $4::text::uuid, $5::text::numeric, $6::text, $7::text, $8::text, \
           CASE WHEN $7::text = 'succeeded' THEN 'ch_' || replace(gen_random_uuid()::text, '-', '') END, \
           $9::integer \
         WHERE {CLAIMED} ON CONFLICT (order_id) DO NOTHING RETURNING {}",
        returning()
    );
    let params = claim.params([
        text(outcome.order_id),
        text(outcome.user_id),
        text(outcome.amount),
        text(outcome.currency),
        text(status),
        reason,
        ParameterValue::Int32(i32::try_from(outcome.attempts).unwrap_or(i32::MAX)),
    ]);
    let rows = conn
        .rows(&spec.wrap_after(&[Claim::cte()], &change), &params)
        .doing("recording a payment")?;
    db::decode_first(&rows, from_row)
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
