//! `POST /orders`: places an order.
//!
//! The stock of every line is reserved, the order and its lines inserted
//! at the reserved (current) prices and `order.created` emitted, in one
//! statement: either all of it happened or none of it. Totals are
//! computed by Postgres in `numeric`, never in floating point. With an
//! `Idempotency-Key` header the same request is answered once (see
//! [`crate::idempotency_keys`]).

use kit::cache::PRODUCTS;
use kit::config::{self, ORDER_PAYMENT_TIMEOUT_SECONDS};
use kit::db::{self, Connection, MIXED_CURRENCIES, NO_SUCH_PRODUCT, OUT_OF_STOCK};
use kit::{ApiError, bearer, json};
use spin_sdk::http::{IntoResponse, Request, Response};
use uuid::Uuid;

use super::not_found;
use crate::idempotency_keys::{self, Begin, Key};
use crate::input::{PlaceBody, PlaceOrder};
use crate::store;

/// The payment window when `order_payment_timeout_seconds` is not set.
pub const DEFAULT_PAYMENT_TIMEOUT_SECS: u64 = 15 * 60;

/// What a refused reservation means for the client.
fn refused(err: db::Error) -> ApiError {
    match err.refusal() {
        Some((OUT_OF_STOCK, product)) => ApiError::Refused {
            slug: "out-of-stock",
            title: "Out of stock",
            detail: format!(
                "product {} does not have enough stock for this order",
                product.unwrap_or("(unknown)")
            ),
        },
        Some((NO_SUCH_PRODUCT, product)) => ApiError::invalid(
            "items",
            format!(
                "product {} does not exist or is no longer sold",
                product.unwrap_or("(unknown)")
            ),
        ),
        Some((MIXED_CURRENCIES, currencies)) => ApiError::invalid(
            "items",
            format!(
                "the products of one order must share a currency (got {})",
                currencies.unwrap_or("several")
            ),
        ),
        _ => err.into(),
    }
}

/// Handles the request: 201 with the order (status `pending`).
///
/// # Errors
///
/// 401 without a valid token; 400/413/422 for a bad body (422 also for an
/// unknown product); 409 `out-of-stock` naming the product; 409/422 for
/// idempotency-key conflicts; 503/500 on database failure.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let caller = bearer::authenticate(req)?;
    let value: serde_json::Value = json::parse(req)?;
    let key = req
        .header(idempotency_keys::HEADER)
        .map(|v| Key::from_header(v.as_bytes()))
        .transpose()?;
    // Only a keyed request needs the body's fingerprint.
    let fingerprint = key.as_ref().map(|_| idempotency_keys::fingerprint(&value));
    let order = PlaceOrder::try_from(json::from_value::<PlaceBody>(value)?)?;
    let timeout = config::number(ORDER_PAYMENT_TIMEOUT_SECONDS, DEFAULT_PAYMENT_TIMEOUT_SECS)?;
    let conn = db::connect()?;
    let (Some(key), Some(fingerprint)) = (key, fingerprint) else {
        return place(&conn, caller.id, &order, None, timeout);
    };
    match idempotency_keys::begin(&conn, caller.id, &key, &fingerprint)? {
        Begin::Replay { status, body } => return Ok(replayed(status, body)),
        Begin::Placed(id) => {
            let order = store::find(&conn, id, caller.id, false)?.ok_or_else(|| not_found(id))?;
            return json::respond(201, &order).map(mark_replayed);
        }
        Begin::Claimed => {}
    }
    let response = place(&conn, caller.id, &order, Some(&key), timeout)
        .unwrap_or_else(IntoResponse::into_response);
    idempotency_keys::finish(&conn, caller.id, &key, *response.status(), response.body())?;
    Ok(response)
}

fn place(
    conn: &Connection,
    user_id: Uuid,
    order: &PlaceOrder,
    key: Option<&Key>,
    timeout: u64,
) -> Result<Response, ApiError> {
    let placed = store::place(
        conn,
        Uuid::new_v4(),
        user_id,
        order,
        key.map(Key::as_str),
        timeout,
    )
    .map_err(refused)?;
    // Stock changed: cached product reads must not show the old level.
    PRODUCTS.bump_or_log();
    json::respond(201, &placed)
}

/// The stored first answer, again.
fn replayed(status: u16, body: String) -> Response {
    let content_type = if status >= 400 {
        kit::problem::PROBLEM_CONTENT_TYPE
    } else {
        "application/json"
    };
    mark_replayed(
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(body.into_bytes())
            .build(),
    )
}

fn mark_replayed(mut response: Response) -> Response {
    response.set_header("idempotent-replayed", "true");
    response
}
