//! `POST /users`: the Express user service's registration, kept for old
//! clients: `{name, email, password}` → 201 `{id, name, email}`.
//!
//! `name` becomes the account's username, so it follows the username
//! rules (3–32 of `[A-Za-z0-9_.-]`); a duplicate e-mail or name is a 409
//! problem, as on `/auth/register`.

use kit::{ApiError, FieldError, json};
use serde::{Deserialize, Serialize};
use spin_sdk::http::{Request, Response};

use crate::handlers::register::{self, NewUser, RegisterBody};

/// The Express service's body.
#[derive(Debug, Deserialize)]
struct UsersBody {
    name: String,
    email: String,
    password: String,
}

/// The Express service's answer.
#[derive(Debug, Serialize)]
struct Created {
    id: uuid::Uuid,
    name: Option<String>,
    email: String,
}

/// Handles the request.
///
/// # Errors
///
/// 409 on a duplicate, 422 on invalid fields (a bad username is reported
/// as `name`), 400/413 on a malformed body.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let body: UsersBody = json::parse(req)?;
    let new_user = NewUser::try_from(RegisterBody::new(
        body.email,
        body.password,
        Some(body.name),
    ))
    .map_err(|err| match err {
        ApiError::Validation(errors) => ApiError::Validation(
            errors
                .into_iter()
                .map(|e| match e.field.as_str() {
                    "username" => FieldError::new("name", e.message),
                    _ => e,
                })
                .collect(),
        ),
        other => other,
    })?;
    let user = register::create(&new_user)?;
    json::respond(
        201,
        &Created {
            id: user.id,
            name: user.username,
            email: user.email,
        },
    )
}
