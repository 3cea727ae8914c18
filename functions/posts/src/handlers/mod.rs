//! One module per operation: parse → apply → respond.

pub mod create;
pub mod delete;
pub mod deliver;
pub mod get;
pub mod health;
pub mod list;
pub mod update;

use kit::ApiError;
use kit::bearer::AuthUser;
use kit::db::Connection;
use uuid::Uuid;

use crate::store::{self, Editor};

/// The `{id}` of a post route; anything that is not a UUID names no post,
/// so it is a 404 like an unknown one.
fn post_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::NotFound(format!("no post {raw}")))
}

/// The caller as an editor: the author of their own posts, or an admin.
fn editor(caller: &AuthUser) -> Editor {
    Editor {
        user: caller.id,
        admin: caller.is_admin(),
    }
}

/// Why a change to post `id` by `caller` changed nothing: 404 when there
/// is no such post, 403 when it is someone else's (posts are public, so
/// hiding it behind a 404 would hide nothing).
///
/// # Errors
///
/// Always: the error to answer; 503/500 on database failure.
fn refused(conn: &Connection, id: Uuid) -> ApiError {
    match store::author_of(conn, id) {
        Ok(Some(_)) => {
            ApiError::Forbidden("only the author or an admin may change this post".into())
        }
        Ok(None) => ApiError::NotFound(format!("no post {id}")),
        Err(err) => err,
    }
}
