//! `POST /auth/password`: change the caller's password with the current
//! one; every other session ends, the caller's continues with a new pair.

use kit::domain::Password;
use kit::{ApiError, FieldError, bearer, db, gate, json};
use serde::Deserialize;
use spin_sdk::http::{Request, Response};

use crate::password_changes;
use crate::passwords;
use crate::session;
use crate::users;

/// Longest current password worth hashing (as at login).
const MAX_PASSWORD_BYTES: usize = 4 * 1024;

/// The request body as sent.
#[derive(Debug, Deserialize)]
struct ChangeBody {
    current_password: String,
    new_password: String,
}

/// A change whose every field is well-formed.
#[derive(Debug)]
struct PasswordChange {
    current: String,
    new: Password,
}

impl TryFrom<ChangeBody> for PasswordChange {
    type Error = ApiError;

    /// Reports every bad field at once (422).
    fn try_from(body: ChangeBody) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        if body.current_password.is_empty() {
            errors.push(FieldError::new(
                "current_password",
                "current_password is required",
            ));
        } else if body.current_password.len() > MAX_PASSWORD_BYTES {
            errors.push(FieldError::new(
                "current_password",
                "current_password is too long",
            ));
        }
        let same = body.new_password == body.current_password;
        let new = Password::parse(body.new_password)
            .map_err(|e| errors.push(FieldError::new("new_password", e)))
            .ok();
        if same && new.is_some() {
            errors.push(FieldError::new(
                "new_password",
                "new_password must differ from the current password",
            ));
        }
        match new {
            Some(new) if errors.is_empty() => Ok(Self {
                current: body.current_password,
                new,
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// Why the password was not changed.
#[derive(Debug, thiserror::Error)]
enum ChangeError {
    /// `current_password` is not the account's password.
    #[error("the current password is wrong")]
    WrongPassword,
    /// Another change won the race.
    #[error("the password was changed meanwhile; log in again")]
    Concurrent,
    /// Anything else, already classified.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<ChangeError> for ApiError {
    fn from(err: ChangeError) -> Self {
        match err {
            ChangeError::WrongPassword => ApiError::Denied {
                slug: "wrong-password",
                title: "Wrong password",
                detail: err.to_string(),
            },
            ChangeError::Concurrent => ApiError::Conflict(err.to_string()),
            ChangeError::Api(api) => api,
        }
    }
}

/// Handles the request: 200 with a new token pair for the caller.
///
/// # Errors
///
/// 401 without a valid token; 403 `wrong-password`; 409 when another
/// change came first; 422 for bad fields; 429 when the account's password
/// attempts are spent; 503 when Redis cannot record the sign-out.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    Ok(change(req)?)
}

fn change(req: &Request) -> Result<Response, ChangeError> {
    let caller = bearer::authenticate(req)?;
    let change: PasswordChange = json::parse::<ChangeBody>(req)?.try_into()?;
    let conn = db::connect()?;
    let account = users::find_credentials_by_id(&conn, caller.id)?
        .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
    // Counted with the account's login attempts: both guess its password.
    gate::count_account_attempt(&account.user.email)?;
    if !passwords::verify(&change.current, &account.password_hash).map_err(ApiError::Internal)? {
        return Err(ChangeError::WrongPassword);
    }
    let hash = passwords::hash(&change.new).map_err(ApiError::Internal)?;
    let changed = password_changes::change(&conn, caller.id, &account.password_hash, &hash)?
        .ok_or(ChangeError::Concurrent)?;
    password_changes::sign_out_everywhere(&changed)?;
    let pair = session::login(&conn, caller.id, account.user.role, changed.generation)?;
    Ok(json::respond(200, &pair)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(current: &str, new: &str) -> u16 {
        let body = ChangeBody {
            current_password: current.into(),
            new_password: new.into(),
        };
        PasswordChange::try_from(body).map_or_else(|e| e.status(), |_| 200)
    }

    #[test]
    fn changes_need_the_current_password_and_a_new_one_within_the_policy() {
        assert_eq!(status("old password", "new password"), 200, "valid");
        assert_eq!(status("", "new password"), 422, "no current password");
        assert_eq!(status("old password", "short"), 422, "short new password");
        assert_eq!(status("same password", "same password"), 422, "unchanged");
        assert_eq!(
            status(&"x".repeat(5000), "new password"),
            422,
            "huge current"
        );
    }
}
