//! `POST /auth/register`: create an account.

use kit::domain::{Email, Password, Username};
use kit::{ApiError, FieldError, db, json};
use serde::Deserialize;
use spin_sdk::http::{Request, Response};

use crate::account_tokens::{Issued, Purpose};
use crate::passwords;
use crate::users::{self, User, WriteError};

/// The request body as sent.
#[derive(Debug, Deserialize)]
pub struct RegisterBody {
    email: String,
    password: String,
    #[serde(default)]
    username: Option<String>,
}

impl RegisterBody {
    /// A body from its fields (for routes that accept another shape).
    pub fn new(email: String, password: String, username: Option<String>) -> Self {
        Self {
            email,
            password,
            username,
        }
    }
}

/// A registration whose every field is valid.
#[derive(Debug)]
pub struct NewUser {
    /// Normalised e-mail.
    pub email: Email,
    /// The chosen password.
    pub password: Password,
    /// Optional username.
    pub username: Option<Username>,
}

impl TryFrom<RegisterBody> for NewUser {
    type Error = ApiError;

    /// Validates every field and reports all failures at once (422).
    fn try_from(body: RegisterBody) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let email = Email::parse(&body.email)
            .map_err(|e| errors.push(FieldError::new("email", e)))
            .ok();
        let password = Password::parse(body.password)
            .map_err(|e| errors.push(FieldError::new("password", e)))
            .ok();
        let username = match body.username {
            None => Some(None),
            Some(raw) => Username::parse(raw)
                .map(Some)
                .map_err(|e| errors.push(FieldError::new("username", e)))
                .ok(),
        };
        match (email, password, username) {
            (Some(email), Some(password), Some(username)) if errors.is_empty() => Ok(Self {
                email,
                password,
                username,
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// Why a registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The e-mail or username is taken.
    #[error(transparent)]
    Taken(WriteError),
    /// Anything else, already classified.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<RegisterError> for ApiError {
    fn from(err: RegisterError) -> Self {
        match err {
            RegisterError::Taken(WriteError::Db(api)) | RegisterError::Api(api) => api,
            RegisterError::Taken(taken) => ApiError::Conflict(taken.to_string()),
        }
    }
}

/// Parses the body into a [`NewUser`].
///
/// # Errors
///
/// 400/413/422 as [`json::parse`] and [`NewUser::try_from`].
pub fn parse(req: &Request) -> Result<NewUser, ApiError> {
    json::parse::<RegisterBody>(req)?.try_into()
}

/// Stores `new_user` with a hashed password and its first e-mail
/// verification token (announced, sealed, in `user.verification_requested`;
/// every register route comes through here).
///
/// # Errors
///
/// [`RegisterError::Taken`] on duplicates; 503/500 otherwise.
pub fn create(new_user: &NewUser) -> Result<User, RegisterError> {
    let conn = db::connect()?;
    let hash = passwords::hash(&new_user.password).map_err(ApiError::Internal)?;
    let verification = Issued::new(Purpose::VerifyEmail)?;
    users::insert(
        &conn,
        &new_user.email,
        new_user.username.as_ref(),
        &hash,
        &verification,
    )
    .map_err(|err| match err {
        WriteError::Db(api) => RegisterError::Api(api),
        taken => RegisterError::Taken(taken),
    })
}

/// Handles the request: 201 with the new user.
///
/// # Errors
///
/// 409 on a duplicate e-mail or username, 422 on invalid fields.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let new_user = parse(req)?;
    let user = create(&new_user)?;
    json::respond(201, &user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(email: &str, password: &str, username: Option<&str>) -> RegisterBody {
        RegisterBody {
            email: email.into(),
            password: password.into(),
            username: username.map(Into::into),
        }
    }

    #[test]
    fn valid_registrations_are_normalised() {
        let user = NewUser::try_from(body(" Ada@Example.com", "longenough", Some("ada"))).unwrap();
        assert_eq!(user.email.as_str(), "ada@example.com");
        assert_eq!(user.username.unwrap().as_str(), "ada");
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let err = NewUser::try_from(body("nope", "short", Some("a b"))).unwrap_err();
        let ApiError::Validation(errors) = err else {
            panic!("expected 422, got {err:?}");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "password", "username"]);
    }
}
