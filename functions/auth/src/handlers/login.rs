//! `POST /auth/login`: exchange credentials for a token pair.

use kit::domain::{Email, Username};
use kit::{ApiError, config, db, gate, json};
use serde::Deserialize;
use spin_sdk::http::{Request, Response};

use crate::passwords;
use crate::session;
use crate::users::{self, Credentials, Login, User};

/// Whether an account must have verified its e-mail address to log in
/// (`true`/`false`; default `false`).
pub const EMAIL_VERIFICATION_REQUIRED: &str = "email_verification_required";

/// Longest password worth hashing; anything longer cannot be stored.
const MAX_PASSWORD_BYTES: usize = 4 * 1024;

/// The request body as sent: an e-mail or a username, and a password.
#[derive(Debug, Deserialize)]
pub struct LoginBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    username: Option<String>,
    password: String,
}

/// Who is logging in.
#[derive(Debug)]
pub enum Identifier {
    /// By e-mail.
    Email(Email),
    /// By username.
    Username(Username),
}

/// A well-formed login attempt.
#[derive(Debug)]
pub struct Attempt {
    identifier: Identifier,
    password: String,
}

impl TryFrom<LoginBody> for Attempt {
    type Error = ApiError;

    fn try_from(body: LoginBody) -> Result<Self, Self::Error> {
        let identifier = match (body.email, body.username) {
            (Some(email), _) => {
                Identifier::Email(Email::parse(&email).map_err(|e| ApiError::invalid("email", e))?)
            }
            (None, Some(name)) => Identifier::Username(
                Username::parse(name).map_err(|e| ApiError::invalid("username", e))?,
            ),
            (None, None) => {
                return Err(ApiError::invalid("email", "email or username is required"));
            }
        };
        if body.password.is_empty() {
            return Err(ApiError::invalid("password", "password is required"));
        }
        if body.password.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::invalid("password", "password is too long"));
        }
        Ok(Self {
            identifier,
            password: body.password,
        })
    }
}

/// Parses the body into an [`Attempt`].
///
/// # Errors
///
/// 400/413/422.
pub fn parse(req: &Request) -> Result<Attempt, ApiError> {
    json::parse::<LoginBody>(req)?.try_into()
}

/// Checks the attempt, counted first against the account's own attempt
/// limit (whatever the outcome, so parallel guesses are counted before any
/// is judged). An unknown account and a wrong password give the
/// same 401 after the same amount of hashing work. A success is recorded
/// (with its `user.logged_in` event) before it is returned, so every login
/// route emits the event. With `email_verification_required` on, an
/// unverified account is refused (after its password checked out, so
/// only its owner learns that).
///
/// # Errors
///
/// 401 on bad credentials; 403 `email-not-verified`; 429 when the
/// account's attempts are spent; 503/500 on database or Redis failure.
pub fn check(conn: &db::Connection, attempt: &Attempt) -> Result<Credentials, ApiError> {
    let login = match &attempt.identifier {
        Identifier::Email(email) => Login::Email(email),
        Identifier::Username(name) => Login::Username(name),
    };
    let account = match &attempt.identifier {
        Identifier::Email(email) => email.as_str(),
        Identifier::Username(name) => name.as_str(),
    };
    gate::count_account_attempt(account)?;
    let rejected = || ApiError::Unauthorized("invalid credentials".into());
    let Some(credentials) = users::find_credentials(conn, login)? else {
        passwords::verify_nothing(&attempt.password);
        return Err(rejected());
    };
    if passwords::verify(&attempt.password, &credentials.password_hash)? {
        require_verified(&credentials.user)?;
        users::record_login(conn, credentials.user.id)?;
        Ok(credentials)
    } else {
        Err(rejected())
    }
}

/// Refuses an unverified account when the deployment requires verified
/// addresses.
///
/// # Errors
///
/// 403 `email-not-verified`; 500 when the variable is not a boolean.
pub fn require_verified(user: &User) -> Result<(), ApiError> {
    require_verified_address(user.email_verified)
}

/// Whether the deployment requires verified addresses to log in or
/// refresh (`email_verification_required`, default off).
///
/// # Errors
///
/// 500 when the variable is not a boolean.
pub fn verification_required() -> Result<bool, ApiError> {
    Ok(config::flag(EMAIL_VERIFICATION_REQUIRED, false)?)
}

/// [`require_verified`] for an account known only by whether its address
/// is verified (a refresh: an account may hold a refresh token from before
/// the deployment required verified addresses).
///
/// # Errors
///
/// 403 `email-not-verified`; 500 when the variable is not a boolean.
pub fn require_verified_address(email_verified: bool) -> Result<(), ApiError> {
    if email_verified || !verification_required()? {
        return Ok(());
    }
    Err(ApiError::Denied {
        slug: "email-not-verified",
        title: "E-mail address not verified",
        detail: "verify your e-mail address first: follow the link in the verification \
                 e-mail, or ask for a new one with POST /auth/verify-email/resend"
            .to_owned(),
    })
}

/// Handles the request: 200 with a token pair.
///
/// # Errors
///
/// 401 on bad credentials, 403 for an unverified account when
/// verification is required, 422 on a malformed attempt.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let attempt = parse(req)?;
    let conn = db::connect()?;
    let account = check(&conn, &attempt)?;
    let pair = session::login(
        &conn,
        account.user.id,
        account.user.role,
        account.generation,
    )?;
    json::respond(200, &pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(email: Option<&str>, username: Option<&str>, password: &str) -> u16 {
        let body = LoginBody {
            email: email.map(Into::into),
            username: username.map(Into::into),
            password: password.into(),
        };
        Attempt::try_from(body).map_or_else(|e| e.status(), |_| 200)
    }

    #[test]
    fn attempts_need_an_identifier_and_a_password() {
        assert_eq!(status(Some("a@b.co"), None, "pw"), 200, "email");
        assert_eq!(status(None, Some("ada"), "pw"), 200, "username");
        assert_eq!(status(None, None, "pw"), 422, "no identifier");
        assert_eq!(status(Some("a@b.co"), None, ""), 422, "empty password");
        assert_eq!(status(Some("not-an-email"), None, "pw"), 422, "bad email");
    }
}
