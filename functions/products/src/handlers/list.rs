//! `GET /products`: live products, keyset-paged and filtered, cache-aside.
//!
//! Query: `limit` (1–100, default 20), `cursor` (from the previous page's
//! `next_cursor`), `q` (case-insensitive substring of the name, at most
//! 200 characters), `min_price` and `max_price` (decimal text, inclusive),
//! `in_stock=true`. The order is `(created_at, id)`, oldest first, so
//! products added while a client pages appear at the end and nothing is
//! skipped or repeated.

use kit::domain::Amount;
use kit::paging::PageRequest;
use kit::query::Query;
use kit::{ApiError, db};
use serde::Serialize;
use spin_sdk::http::{Request, Response};

use super::{cached_json, to_json};
use crate::cached;
use crate::catalog::{self, Filter, Product};

/// The parameters this route reads.
const PARAMS: &[&str] = &["limit", "cursor", "q", "min_price", "max_price", "in_stock"];

/// Longest accepted `q`, in characters.
const MAX_QUERY_CHARS: usize = 200;

/// One page.
#[derive(Debug, Serialize)]
struct Page {
    items: Vec<Product>,
    next_cursor: Option<String>,
}

fn filter(query: &Query) -> Result<Filter, ApiError> {
    let q = query.get("q").map(str::trim).filter(|q| !q.is_empty());
    if q.is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS) {
        return Err(ApiError::invalid(
            "q",
            format!("must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let filter = Filter {
        q: q.map(str::to_owned),
        min_price: query.parsed::<Amount>("min_price")?,
        max_price: query.parsed::<Amount>("max_price")?,
        in_stock: query.flag("in_stock")?.unwrap_or(false),
    };
    if let (Some(min), Some(max)) = (filter.min_price, filter.max_price)
        && min > max
    {
        return Err(ApiError::invalid("min_price", "must not exceed max_price"));
    }
    Ok(filter)
}

/// Handles the request: 200 `{"items": [...], "next_cursor": "..." | null}`.
///
/// # Errors
///
/// 422 for unknown parameters or bad values, 503/500 on database failure.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let query = Query::of(req);
    query.only(PARAMS)?;
    let filter = filter(&query)?;
    let page = PageRequest::from_query(&query)?;
    // Everything that decides the answer, canonically.
    let canonical = format!(
        "list:{}|{}|{:?}|{:?}|{:?}|{}",
        page.limit,
        page.after.as_ref().map(|c| c.encode()).unwrap_or_default(),
        filter.q,
        filter.min_price.map(|a| a.cents()),
        filter.max_price.map(|a| a.cents()),
        filter.in_stock,
    );
    let (found, source) = cached::read(&cached::entry(&canonical), || {
        let conn = db::connect()?;
        let (items, next_cursor) = catalog::list(&conn, &filter, &page)?;
        to_json(&Page { items, next_cursor }).map(Some)
    })?;
    let bytes =
        found.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a list read found nothing")))?;
    Ok(cached_json(bytes, source))
}
