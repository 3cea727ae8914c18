//! `GET /posts`: every post, newest first, keyset-paged and filtered.
//!
//! Query: `limit` (1–100, default 20), `cursor` (from the previous page's
//! `next_cursor`), `author` (a user id, or a username matched
//! case-insensitively against the profiles), `tag` (one tag, matched
//! after the same normalization as tags are stored with). The order is
//! `(created_at, id)` descending: posts written while a client pages are
//! newer than its cursor, so they never push a post onto the next page
//! twice and nothing is skipped.

use kit::domain::Username;
use kit::paging::PageRequest;
use kit::query::Query;
use kit::{ApiError, db, json};
use serde::Serialize;
use spin_sdk::http::{Request, Response};

use crate::input;
use crate::store::{self, AuthorFilter, Filter, Post};

/// The parameters this route reads.
const PARAMS: &[&str] = &["limit", "cursor", "author", "tag"];

/// One page.
#[derive(Debug, Serialize)]
struct Page {
    items: Vec<Post>,
    next_cursor: Option<String>,
}

fn filter(query: &Query) -> Result<Filter, ApiError> {
    let author = match query.get("author") {
        None => None,
        Some(raw) => Some(match raw.parse() {
            Ok(id) => AuthorFilter::Id(id),
            Err(_) => Username::parse(raw.to_owned())
                .map(|name| AuthorFilter::Name(name.as_str().to_owned()))
                .map_err(|_| ApiError::invalid("author", "must be a user id or a username"))?,
        }),
    };
    let tag = query
        .get("tag")
        .map(input::tag)
        .transpose()
        .map_err(|message| ApiError::invalid("tag", message))?;
    Ok(Filter { author, tag })
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
    let conn = db::connect()?;
    let (items, next_cursor) = store::list(&conn, &filter, &page)?;
    json::respond(200, &Page { items, next_cursor })
}
