//! `GET /orders`: the caller's order history, newest first, keyset-paged
//! (`limit` 1–100, default 20; `cursor` from `next_cursor`), each order
//! with its payment status.

use kit::paging::PageRequest;
use kit::query::Query;
use kit::{ApiError, bearer, db, json};
use serde_json::json;
use spin_sdk::http::{Request, Response};

use crate::store;

/// Handles the request: 200 `{"items": [...], "next_cursor": ...}`.
///
/// # Errors
///
/// 401 without a valid token, 422 for bad parameters, 503/500 on
/// database failure.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let caller = bearer::authenticate(req)?;
    let query = Query::of(req);
    query.only(&["limit", "cursor"])?;
    let page = PageRequest::from_query(&query)?;
    let conn = db::connect()?;
    let (items, next_cursor) = store::list_mine(&conn, caller.id, &page)?;
    json::respond(200, &json!({ "items": items, "next_cursor": next_cursor }))
}
