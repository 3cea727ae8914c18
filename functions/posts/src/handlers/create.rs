//! `POST /posts` (Bearer): writes a post by the caller.

use kit::{ApiError, bearer, db, json};
use spin_sdk::http::{Request, Response};

use crate::input::{NewPost, NewPostBody};
use crate::store;

/// Handles the request: 201 with the post; `post.created` goes out in
/// the same statement. The author is the token's user, whether or not
/// their profile has arrived here yet (its name shows once it has).
///
/// # Errors
///
/// 401 without a valid token, 400/413/422 for a bad body, 503/500 on
/// database failure.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let caller = bearer::authenticate(req)?;
    let new = NewPost::try_from(json::parse::<NewPostBody>(req)?)?;
    let conn = db::connect()?;
    let post = store::create(&conn, caller.id, &new)?;
    json::respond(201, &post)
}
