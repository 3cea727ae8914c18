//! The `orders` and `order_items` tables: placing an order (stock, order,
//! lines, idempotency key and event in one statement), reading them, and
//! the status changes of the saga, each with its event.
//!
//! Status changes are `UPDATE ... WHERE status = 'pending'`, and the
//! table's trigger refuses any change out of a terminal state besides, so
//! a redelivered or late event changes nothing; an event is emitted only
//! for a row that really moved.

use kit::ApiError;
use kit::db::{self, Connection, DbValue, Doing as _, ParameterValue, Statement, text};
use kit::idempotency::Claim;
use kit::outbox::{self, EventSpec};
use kit::paging::{Cursor, PageRequest};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::input::PlaceOrder;

/// An order as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    /// Primary key.
    pub id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// `pending`, `paid`, `payment_failed` or `cancelled`.
    pub status: String,
    /// The lines, at the prices reserved when the order was placed.
    pub items: Vec<Item>,
    /// Sum of quantity × unit price, exact decimal text.
    pub total: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Where the payment stands.
    pub payment: Payment,
    /// When an unpaid order is cancelled, RFC 3339 UTC.
    pub expires_at: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// One line of an order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// The product.
    pub product_id: Uuid,
    /// Units.
    pub quantity: i64,
    /// Price per unit when ordered, exact decimal text.
    pub unit_price: String,
}

/// The payment as the order knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payment {
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Why it failed, when it did.
    pub reason: Option<String>,
}

/// `order.created` (aggregate `orders`, subject = order id). Data,
/// version 1:
///
/// ```json
/// {"version": 1, "order_id": "<uuid>", "user_id": "<uuid>",
///  "items": [{"product_id": "<uuid>", "quantity": 2, "unit_price": "9.50"}],
///  "total": "19.00", "currency": "USD", "payment_token": "tok_visa" | null,
///  "expires_at": "2024-05-01T12:15:00.000000Z"}
/// ```
pub const ORDER_CREATED: EventSpec = EventSpec {
    source: "/orders",
    kind: "order.created",
    aggregate: "orders",
    subject: "id",
    version: 1,
    fields: &[
        ("order_id", "changed.id"),
        ("user_id", "changed.user_id"),
        ("items", "changed.items::jsonb"),
        ("total", "changed.total"),
        ("currency", "changed.currency"),
        ("payment_token", "changed.payment_token"),
        ("expires_at", "changed.expires_at"),
    ],
    only_when: None,
};

/// `order.paid`. Data, version 1:
/// `{"version": 1, "order_id", "user_id", "total", "currency"}`.
pub const ORDER_PAID: EventSpec = EventSpec {
    source: "/orders",
    kind: "order.paid",
    aggregate: "orders",
    subject: "id",
    version: 1,
    fields: &[
        ("order_id", "changed.id"),
        ("user_id", "changed.user_id"),
        ("total", "changed.total"),
        ("currency", "changed.currency"),
    ],
    only_when: Some("changed.status = 'paid'"),
};

/// `order.payment_failed`. Data, version 1:
/// `{"version": 1, "order_id", "user_id", "reason"}`.
pub const ORDER_PAYMENT_FAILED: EventSpec = EventSpec {
    source: "/orders",
    kind: "order.payment_failed",
    aggregate: "orders",
    subject: "id",
    version: 1,
    fields: &[
        ("order_id", "changed.id"),
        ("user_id", "changed.user_id"),
        ("reason", "changed.payment_reason"),
    ],
    only_when: Some("changed.status = 'payment_failed'"),
};

/// `order.cancelled`: by the buyer (`reason: "buyer"`) or by the clock
/// for an order unpaid past its `expires_at` (`"payment_timeout"`). Data,
/// version 1: `{"version": 1, "order_id", "user_id", "reason"}`.
pub const ORDER_CANCELLED: EventSpec = EventSpec {
    source: "/orders",
    kind: "order.cancelled",
    aggregate: "orders",
    subject: "id",
    version: 1,
    fields: &[
        ("order_id", "changed.id"),
        ("user_id", "changed.user_id"),
        ("reason", "changed.reason"),
    ],
    only_when: Some("changed.status = 'cancelled'"),
};

/// The order columns for a row aliased `o`, with its lines as JSON text,
/// in the order [`from_row`] reads them.
fn columns() -> String {
    format!(
        "o.id::text AS id, o.user_id::text AS user_id, o.status, \
         (SELECT coalesce(jsonb_agg(jsonb_build_object('product_id', i.product_id, \
            'quantity', i.quantity, 'unit_price', i.unit_price::text) ORDER BY i.product_id), '[]') \
            FROM order_items i WHERE i.order_id = o.id)::text AS items, \
         o.total::text AS total, o.currency, o.payment_status, o.payment_reason, \
         {} AS expires_at, {} AS created_at, {} AS updated_at",
        kit::rfc3339!("o.expires_at"),
        kit::rfc3339!("o.created_at"),
        kit::rfc3339!("o.updated_at"),
    )
}

fn from_row(row: &[DbValue]) -> anyhow::Result<Order> {
    let id: String = db::column(row, 0, "id")?;
    let user_id: String = db::column(row, 1, "user_id")?;
    let items: String = db::column(row, 3, "items")?;
    Ok(Order {
        id: id.parse()?,
        user_id: user_id.parse()?,
        status: db::column(row, 2, "status")?,
        items: serde_json::from_str(&items)?,
        total: db::column(row, 4, "total")?,
        currency: db::column(row, 5, "currency")?,
        payment: Payment {
            status: db::column(row, 6, "payment_status")?,
            reason: db::column(row, 7, "payment_reason")?,
        },
        expires_at: db::column(row, 8, "expires_at")?,
        created_at: db::column(row, 9, "created_at")?,
        updated_at: db::column(row, 10, "updated_at")?,
    })
}

fn orders(rows: &[Vec<DbValue>]) -> Result<Vec<Order>, ApiError> {
    db::decode_all(rows, from_row)
}

/// The first order of `rows`, which must be there.
fn the_order(rows: &[Vec<DbValue>]) -> Result<Order, ApiError> {
    orders(rows)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the statement returned no order")))
}

/// Places order `id` for `user_id`: reserves the stock (all lines or
/// none; raises out-of-stock / no-such-product / mixed-currencies
/// refusals), inserts the order and its lines at the reserved prices,
/// ties it to the request's idempotency key (if any) and emits
/// [`ORDER_CREATED`], in one statement.
///
/// # Errors
///
/// The classified database failure; refusals are
/// [`kit::db::ErrorKind::Refused`].
pub fn place(
    conn: &Connection,
    id: Uuid,
    user_id: Uuid,
    order: &PlaceOrder,
    idempotency_key: Option<&str>,
    payment_timeout_secs: u64,
) -> Result<Order, db::Error> {
    let reserved = "reserved AS (SELECT r.product_id, r.quantity, r.unit_price, r.currency \
                    FROM reserve_stock($1::text::uuid, $2::text::jsonb) r)";
    let summary = "summary AS (SELECT sum(r.quantity * r.unit_price) AS total, \
                   CASE WHEN count(DISTINCT r.currency) = 1 THEN min(r.currency) \
                   ELSE spinmesh_refuse('SMMIX', 'mixed currencies', \
                        string_agg(DISTINCT r.currency, ',')) END AS currency FROM reserved r)";
    let lines = "lines AS (INSERT INTO order_items (order_id, product_id, quantity, unit_price) \
                 SELECT $1::text::uuid, r.product_id, r.quantity, r.unit_price FROM reserved r)";
    let keyed = "keyed AS (UPDATE order_idempotency_keys k SET order_id = $1::text::uuid \
                 WHERE k.user_id = $3::text::uuid AND k.key = $6::text)";
    let items = "(SELECT jsonb_agg(jsonb_build_object('product_id', r.product_id, \
                 'quantity', r.quantity, 'unit_price', r.unit_price::text) ORDER BY r.product_id) \
                 FROM reserved r)::text";
    let change = format!(
        "INSERT INTO orders AS o (id, user_id, total, currency, payment_token, expires_at) \
         SELECT $1::text::uuid, $3::text::uuid, s.total, s.currency, $4::text, \
                now() + make_interval(secs => $5::bigint) FROM summary s \
         RETURNING o.id::text AS id, o.user_id::text AS user_id, o.status, {items} AS items, \
           o.total::text AS total, o.currency, o.payment_status, o.payment_reason, \
           {} AS expires_at, {} AS created_at, {} AS updated_at, o.payment_token",
        kit::rfc3339!("o.expires_at"),
        kit::rfc3339!("o.created_at"),
        kit::rfc3339!("o.updated_at"),
    );
    let params = [
        text(id),
        text(order.items_json()),
        text(user_id),
        order.token.as_deref().map_or(ParameterValue::DbNull, text),
        ParameterValue::Int64(i64::try_from(payment_timeout_secs).unwrap_or(i64::MAX)),
        idempotency_key.map_or(ParameterValue::DbNull, text),
    ];
    let statement = ORDER_CREATED.wrap_after(&[reserved, summary, lines, keyed], &change);
    let rows = conn.rows(&statement, &params).doing("placing an order")?;
    the_order(&rows).map_err(|e| db::Error::new(db::ErrorKind::Other, e.to_string()))
}

/// Order `id` if `caller` may see it: its buyer, or anyone when
/// `any_owner` (an admin).
///
/// # Errors
///
/// 503/500 on database failure.
pub fn find(
    conn: &Connection,
    id: Uuid,
    caller: Uuid,
    any_owner: bool,
) -> Result<Option<Order>, ApiError> {
    let sql = Statement::new(format!(
        "SELECT {} FROM orders o WHERE o.id = $1::text::uuid \
         AND ($3::boolean OR o.user_id = $2::text::uuid)",
        columns()
    ));
    let params = [text(id), text(caller), ParameterValue::Boolean(any_owner)];
    let rows = conn.rows(&sql, &params).doing("loading an order")?;
    Ok(orders(&rows)?.into_iter().next())
}

/// The buyer's orders, newest first, one page.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn list_mine(
    conn: &Connection,
    user_id: Uuid,
    page: &PageRequest,
) -> Result<(Vec<Order>, Option<String>), ApiError> {
    let sql = Statement::new(format!(
        "SELECT {} FROM orders o WHERE o.user_id = $1::text::uuid \
         AND ($2::text IS NULL OR (o.created_at, o.id) < ($2::text::timestamptz, $3::text::uuid)) \
         ORDER BY o.created_at DESC, o.id DESC LIMIT $4::bigint",
        columns()
    ));
    let [at, id] = page.after_params();
    let params = [text(user_id), at, id, ParameterValue::Int64(page.fetch())];
    let rows = conn.rows(&sql, &params).doing("listing orders")?;
    Ok(page.split(orders(&rows)?, |o| Cursor {
        created_at: o.created_at.clone(),
        id: o.id,
    }))
}

/// Cancels the buyer's pending order and emits [`ORDER_CANCELLED`]
/// (`reason: "buyer"`); `None` when it is not pending (any more).
///
/// # Errors
///
/// 503/500 on database failure.
pub fn cancel(conn: &Connection, id: Uuid, user_id: Uuid) -> Result<Option<Order>, ApiError> {
    let change = format!(
        "UPDATE orders o SET status = 'cancelled' \
         WHERE o.id = $1::text::uuid AND o.user_id = $2::text::uuid AND o.status = 'pending' \
         RETURNING {}, 'buyer'::text AS reason",
        columns()
    );
    let rows = outbox::query(conn, &ORDER_CANCELLED, &change, &[text(id), text(user_id)])
        .doing("cancelling an order")?;
    Ok(orders(&rows)?.into_iter().next())
}

/// How a payment ended, as its event said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentResult {
    /// Charged.
    Succeeded,
    /// Declined or impossible, with why.
    Failed(String),
    /// Declined because the order's payment window had closed: the order
    /// is cancelled (`payment_timeout`), as the clock would have done, so
    /// the result is the same whichever of the two gets there first.
    Expired(String),
}

/// The reason payments gives for an order presented after its window.
pub const WINDOW_EXPIRED: &str = "payment_window_expired";

/// One delivered payment result for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentApplied {
    /// The delivered `payment.*` event (the claim).
    pub event_id: Uuid,
    /// The order it is for.
    pub order_id: Uuid,
    /// What it says.
    pub result: PaymentResult,
}

impl PaymentApplied {
    /// The row [`apply_payments`] reads for it: the status a pending order
    /// moves to, the payment status and the reason.
    fn row(&self) -> serde_json::Value {
        let (status, payment_status, reason) = match &self.result {
            PaymentResult::Succeeded => ("paid", "succeeded", None),
            PaymentResult::Failed(why) => ("payment_failed", "failed", Some(why)),
            PaymentResult::Expired(why) => ("cancelled", "failed", Some(why)),
        };
        serde_json::json!({
            "event_id": self.event_id,
            "order_id": self.order_id,
            "status": status,
            "payment_status": payment_status,
            "reason": reason,
        })
    }
}

/// Records payment results on their orders, each once per event, in one
/// statement: a pending order becomes `paid` ([`ORDER_PAID`]),
/// `payment_failed` ([`ORDER_PAYMENT_FAILED`]) or, for a closed payment
/// window, `cancelled` ([`ORDER_CANCELLED`], reason `payment_timeout`). An
/// order that is no longer pending keeps its status (a payment that lands
/// after the clock cancelled the order is recorded as its payment status,
/// and logged, but moves nothing). `payments` must name each order at most
/// once (an `UPDATE` changes a row once per statement); the caller splits
/// a batch that repeats one. Rows are locked in id order, so concurrent
/// batches cannot deadlock. Returns, for each event applied now, its order
/// and whether the order moved.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn apply_payments(
    conn: &Connection,
    consumer: &str,
    payments: &[PaymentApplied],
) -> Result<Vec<Applied>, ApiError> {
    if payments.is_empty() {
        return Ok(Vec::new());
    }
    let [input, claim] = Claim::batch_ctes(
        "event_id uuid, order_id uuid, status text, payment_status text, reason text",
    );
    // `$3` lists the orders again, as an array: the planner guesses a
    // `json_to_recordset` at 100 rows and would hash-join it against a
    // sequential scan of every order; `id = ANY($3)` makes both steps
    // index lookups of the few orders a batch names.
    let before = "before AS (SELECT b.id, b.status, i.status AS next, i.payment_status, i.reason \
                  FROM orders b JOIN input i ON i.order_id = b.id JOIN claim c USING (event_id) \
                  WHERE b.id = ANY($3::text::uuid[]) ORDER BY b.id FOR UPDATE OF b)";
    let change = "UPDATE orders o SET \
           status = CASE WHEN o.status = 'pending' THEN before.next ELSE o.status END, \
           payment_status = before.payment_status, payment_reason = before.reason \
         FROM before WHERE o.id = before.id AND o.id = ANY($3::text::uuid[]) \
         RETURNING o.id::text AS id, o.user_id::text AS user_id, o.total::text AS total, \
           o.currency, o.payment_reason, \
           CASE WHEN before.status = 'pending' THEN o.status ELSE 'unchanged' END AS status, \
           'payment_timeout'::text AS reason";
    let statement = outbox::wrap_each(
        &[&ORDER_PAID, &ORDER_PAYMENT_FAILED, &ORDER_CANCELLED],
        &[&input, &claim, before],
        change,
    );
    let mut params =
        Claim::batch_params(consumer, payments.iter().map(PaymentApplied::row).collect());
    let ids: Vec<String> = payments.iter().map(|p| p.order_id.to_string()).collect();
    params.push(text(format!("{{{}}}", ids.join(","))));
    let rows = conn.rows(&statement, &params).doing("recording payments")?;
    rows.iter()
        .map(|row| {
            let id: String = db::column(row, 0, "id")?;
            let status: String = db::column(row, 5, "status")?;
            Ok(Applied {
                order_id: id.parse()?,
                moved: status != "unchanged",
            })
        })
        .collect::<anyhow::Result<_>>()
        .map_err(ApiError::Internal)
}

/// Cancels every pending order whose payment window has closed (at most
/// `limit` per call), emitting [`ORDER_CANCELLED`] with `reason:
/// "payment_timeout"` for each. Returns how many were cancelled.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn expire(conn: &Connection, limit: i64) -> Result<usize, ApiError> {
    let due = "due AS (SELECT d.id FROM orders d WHERE d.status = 'pending' AND d.expires_at < now() \
               ORDER BY d.expires_at LIMIT $1::bigint FOR UPDATE SKIP LOCKED)";
    let change = "UPDATE orders o SET status = 'cancelled', payment_reason = 'payment window expired' \
                  FROM due WHERE o.id = due.id AND o.status = 'pending' \
                  RETURNING o.id::text AS id, o.user_id::text AS user_id, o.status, \
                    'payment_timeout'::text AS reason";
    let rows = conn
        .rows(
            &ORDER_CANCELLED.wrap_after(&[due], change),
            &[ParameterValue::Int64(limit)],
        )
        .doing("expiring unpaid orders")?;
    Ok(rows.len())
}

/// A payment result [`apply_payments`] applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The order.
    pub order_id: Uuid,
    /// Whether the order changed status.
    pub moved: bool,
}
