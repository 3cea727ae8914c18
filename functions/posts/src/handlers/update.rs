//! `PATCH /posts/{id}`: the author or an admin changes a post.

use kit::{ApiError, bearer, db, json};
use spin_sdk::http::{Request, Response};

use super::{editor, post_id, refused};
use crate::input::{Patch, PatchBody};
use crate::store;

/// Handles the request: 200 with the post as it is now; `post.updated`
/// names the fields whose value changed.
///
/// # Errors
///
/// 401 without a valid token, 404 for an unknown post, 403 for someone
/// else's post, 400/413/422 for a bad body, 503/500 on database failure.
pub fn handle(req: &Request, raw_id: &str) -> Result<Response, ApiError> {
    let caller = bearer::authenticate(req)?;
    let id = post_id(raw_id)?;
    let patch = Patch::try_from(json::parse::<PatchBody>(req)?)?;
    let conn = db::connect()?;
    match store::update(&conn, id, editor(&caller), &patch)? {
        Some(post) => json::respond(200, &post),
        None => Err(refused(&conn, id)),
    }
}
