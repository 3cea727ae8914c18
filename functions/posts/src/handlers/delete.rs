//! `DELETE /posts/{id}`: the author or an admin deletes a post.

use kit::{ApiError, bearer, db};
use spin_sdk::http::{Request, Response};

use super::{editor, post_id, refused};
use crate::store;

/// Handles the request: 204; `post.deleted` goes out in the same
/// statement.
///
/// # Errors
///
/// 401 without a valid token, 404 for an unknown (or already deleted)
/// post, 403 for someone else's post, 503/500 on database failure.
pub fn handle(req: &Request, raw_id: &str) -> Result<Response, ApiError> {
    let caller = bearer::authenticate(req)?;
    let id = post_id(raw_id)?;
    let conn = db::connect()?;
    if store::delete(&conn, id, editor(&caller))? {
        Ok(Response::builder().status(204).body(Vec::new()).build())
    } else {
        Err(refused(&conn, id))
    }
}
