//! `GET /posts/{id}`: one post, to anyone.

use kit::{ApiError, db, json};
use spin_sdk::http::{Request, Response};

use super::post_id;
use crate::store;

/// Handles the request: 200 with the post.
///
/// # Errors
///
/// 404 for an unknown post, 503/500 on database failure.
pub fn handle(_: &Request, raw_id: &str) -> Result<Response, ApiError> {
    let id = post_id(raw_id)?;
    let conn = db::connect()?;
    let post =
        store::find(&conn, id)?.ok_or_else(|| ApiError::NotFound(format!("no post {id}")))?;
    json::respond(200, &post)
}
