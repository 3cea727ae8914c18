//! The `products` table: reads, admin writes with their events, and the
//! release of an order's stock.
//!
//! Every value crosses as text (`price::text`, `$n::text::numeric`), so
//! prices stay exact decimals on every host.

use kit::ApiError;
use kit::db::{
    self, Connection, DbValue, Doing as _, ParameterValue, Statement, text, text_or_null,
};
use kit::domain::Amount;
use kit::idempotency::{CLAIMED, Claim};
use kit::outbox::{self, EventSpec};
use kit::paging::{Cursor, PageRequest};
use serde::Serialize;
use uuid::Uuid;

use crate::input::{NewProduct, Patch};

/// A product as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Product {
    /// Primary key.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Exact decimal text with two places, e.g. `"19.99"`.
    pub price: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Units available to order.
    pub stock: i32,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// `product.created` (aggregate `products`, subject = product id). Data,
/// version 1:
///
/// ```json
/// {"version": 1, "product_id": "<uuid>", "name": "Mug", "price": "9.50",
///  "currency": "USD", "stock": 3}
/// ```
pub const PRODUCT_CREATED: EventSpec = EventSpec {
    source: "/products",
    kind: "product.created",
    aggregate: "products",
    subject: "id",
    version: 1,
    fields: &[
        ("product_id", "changed.id"),
        ("name", "changed.name"),
        ("price", "changed.price"),
        ("currency", "changed.currency"),
        ("stock", "changed.stock"),
    ],
    only_when: None,
};

/// `product.updated`: the fields an admin changed, with their new values
/// (only those whose value actually changed; no event when none did).
/// Data, version 1:
///
/// ```json
/// {"version": 1, "product_id": "<uuid>", "changes": {"price": "8.00", "stock": 10}}
/// ```
pub const PRODUCT_UPDATED: EventSpec = EventSpec {
    source: "/products",
    kind: "product.updated",
    aggregate: "products",
    subject: "id",
    version: 1,
    fields: &[("product_id", "changed.id"), ("changes", "changed.changes")],
    only_when: Some("changed.changes <> '{}'::jsonb"),
};

/// `product.archived`: the product left the catalog. `deleted` is true
/// when no order ever held it, so the row itself was removed. Data,
/// version 1:
///
/// ```json
/// {"version": 1, "product_id": "<uuid>", "deleted": false}
/// ```
pub const PRODUCT_ARCHIVED: EventSpec = EventSpec {
    source: "/products",
    kind: "product.archived",
    aggregate: "products",
    subject: "id",
    version: 1,
    fields: &[("product_id", "changed.id"), ("deleted", "changed.deleted")],
    only_when: None,
};

/// The product columns, in the order [`from_row`] reads them, for a table
/// or CTE aliased `p`.
fn columns() -> String {
    format!(
        "p.id::text AS id, p.name, p.description, p.price::text AS price, p.currency, p.stock, \
         {} AS created_at, {} AS updated_at",
        kit::rfc3339!("p.created_at"),
        kit::rfc3339!("p.updated_at")
    )
}

fn from_row(row: &[DbValue]) -> anyhow::Result<Product> {
    let id: String = db::column(row, 0, "id")?;
    let price: String = db::column(row, 3, "price")?;
    let price: Amount = price
        .parse()
        .map_err(|e| anyhow::anyhow!("products.price {price:?}: {e}"))?;
    Ok(Product {
        id: id.parse()?,
        name: db::column(row, 1, "name")?,
        description: db::column(row, 2, "description")?,
        price: price.to_string(),
        currency: db::column(row, 4, "currency")?,
        stock: db::column(row, 5, "stock")?,
        created_at: db::column(row, 6, "created_at")?,
        updated_at: db::column(row, 7, "updated_at")?,
    })
}

fn products(rows: &[Vec<DbValue>]) -> Result<Vec<Product>, ApiError> {
    db::decode_all(rows, from_row)
}

/// What a listing is filtered by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    /// Lowest price, inclusive.
    pub min_price: Option<Amount>,
    /// Highest price, inclusive.
    pub max_price: Option<Amount>,
    /// Only products with stock left.
    pub in_stock: bool,
}

/// One page of live products in `(created_at, id)` order, and the cursor
/// of the next page.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn list(
    conn: &Connection,
    filter: &Filter,
    page: &PageRequest,
) -> Result<(Vec<Product>, Option<String>), ApiError> {
    let sql = Statement::new(format!(
        "SELECT {} FROM products p \
         WHERE p.archived_at IS NULL \
           AND ($1::text IS NULL OR strpos(lower(p.name), lower($1::text)) > 0) \
           AND ($2::text IS NULL OR p.price >= $2::text::numeric) \
           AND ($3::text IS NULL OR p.price <= $3::text::numeric) \
           AND (NOT $4::boolean OR p.stock > 0) \
           AND ($5::text IS NULL OR (p.created_at, p.id) > ($5::text::timestamptz, $6::text::uuid)) \
         ORDER BY p.created_at, p.id LIMIT $7::bigint",
        columns()
    ));
    let [at, id] = page.after_params();
    let params = [
        text_or_null(filter.q.as_deref()),
        text_or_null(filter.min_price),
        text_or_null(filter.max_price),
        ParameterValue::Boolean(filter.in_stock),
        at,
        id,
        ParameterValue::Int64(page.fetch()),
    ];
    let rows = conn.rows(&sql, &params).doing("listing products")?;
    let found = products(&rows)?;
    Ok(page.split(found, |p| Cursor {
        created_at: p.created_at.clone(),
        id: p.id,
    }))
}

/// A live product.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn find(conn: &Connection, id: Uuid) -> Result<Option<Product>, ApiError> {
    let sql = Statement::new(format!(
        "SELECT {} FROM products p WHERE p.id = $1::text::uuid AND p.archived_at IS NULL",
        columns()
    ));
    let rows = conn.rows(&sql, &[text(id)]).doing("loading a product")?;
    Ok(products(&rows)?.into_iter().next())
}

/// Adds a product and emits [`PRODUCT_CREATED`].
///
/// # Errors
///
/// 503/500 on database failure.
pub fn create(conn: &Connection, new: &NewProduct) -> Result<Product, ApiError> {
    let change = format!(
        "INSERT INTO products AS p (name, description, price, currency, stock) \
         VALUES ($1::text, $2::text, $3::text::numeric, $4::text, $5::bigint) RETURNING {}",
        columns()
    );
    let params = [
        text(&new.name),
        text(&new.description),
        text(new.price),
        text(&new.currency),
        ParameterValue::Int64(i64::from(new.stock)),
    ];
    let rows =
        outbox::query(conn, &PRODUCT_CREATED, &change, &params).doing("creating a product")?;
    products(&rows)?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("INSERT returned no row")))
}

/// Applies `patch` to a live product and emits [`PRODUCT_UPDATED`] with
/// what changed; `None` when there is no such live product.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn update(conn: &Connection, id: Uuid, patch: &Patch) -> Result<Option<Product>, ApiError> {
    let old = "old AS (SELECT o.* FROM products o \
               WHERE o.id = $1::text::uuid AND o.archived_at IS NULL FOR UPDATE)";
    let changes = "jsonb_strip_nulls(jsonb_build_object(\
        'name', CASE WHEN p.name IS DISTINCT FROM old.name THEN p.name END, \
        'description', CASE WHEN p.description IS DISTINCT FROM old.description THEN p.description END, \
        'price', CASE WHEN p.price IS DISTINCT FROM old.price THEN p.price::text END, \
        'currency', CASE WHEN p.currency IS DISTINCT FROM old.currency THEN p.currency END, \
        'stock', CASE WHEN p.stock IS DISTINCT FROM old.stock THEN p.stock END))";
    let change = format!(
        "UPDATE products p SET \
           name = coalesce($2::text, p.name), \
           description = coalesce($3::text, p.description), \
           price = coalesce($4::text::numeric, p.price), \
           currency = coalesce($5::text, p.currency), \
           stock = coalesce($6::bigint::integer, p.stock), \
           updated_at = now() \
         FROM old WHERE p.id = old.id RETURNING {}, {changes} AS changes",
        columns()
    );
    let params = [
        text(id),
        text_or_null(patch.name.as_deref()),
        text_or_null(patch.description.as_deref()),
        text_or_null(patch.price),
        text_or_null(patch.currency.as_ref()),
        patch.stock.map_or(ParameterValue::DbNull, |s| {
            ParameterValue::Int64(i64::from(s))
        }),
    ];
    let rows = conn
        .rows(&PRODUCT_UPDATED.wrap_after(&[old], &change), &params)
        .doing("updating a product")?;
    Ok(products(&rows)?.into_iter().next())
}

/// Takes a live product out of the catalog and emits [`PRODUCT_ARCHIVED`]:
/// archived when an order ever held it (its history must still resolve),
/// deleted otherwise. `None` when there is no such live product.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn archive(conn: &Connection, id: Uuid) -> Result<Option<bool>, ApiError> {
    let target = "target AS (SELECT t.id, EXISTS (SELECT 1 FROM stock_reservations r \
                  WHERE r.product_id = t.id) AS has_orders FROM products t \
                  WHERE t.id = $1::text::uuid AND t.archived_at IS NULL FOR UPDATE)";
    let removed = "removed AS (DELETE FROM products p USING target \
                   WHERE p.id = target.id AND NOT target.has_orders RETURNING p.id)";
    let archived = "archived AS (UPDATE products p SET archived_at = now(), updated_at = now() \
                    FROM target WHERE p.id = target.id AND target.has_orders RETURNING p.id)";
    let change = "SELECT id::text AS id, false AS deleted FROM archived \
                  UNION ALL SELECT id::text, true FROM removed";
    let rows = conn
        .rows(
            &PRODUCT_ARCHIVED.wrap_after(&[target, removed, archived], change),
            &[text(id)],
        )
        .doing("archiving a product")?;
    db::decode_first(&rows, |row| db::column::<bool>(row, 1, "deleted"))
}

/// Gives back the stock `order_id` still holds, once per event (the
/// claim), and in any case at most once per order (`release_stock` is
/// idempotent itself). Returns the units put back, `None` for a
/// redelivered event.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn release_for(
    conn: &Connection,
    claim: &Claim,
    order_id: Uuid,
) -> Result<Option<i32>, ApiError> {
    let released =
        format!("released AS (SELECT release_stock($3::text::uuid) AS units WHERE {CLAIMED})");
    let sql = Statement::new("SELECT units FROM released")
        .with(Claim::cte())
        .with(released);
    let rows = conn
        .rows(&sql, &claim.params([text(order_id)]))
        .doing("releasing an order's stock")?;
    db::decode_first(&rows, |row| db::column::<i32>(row, 0, "units"))
}
