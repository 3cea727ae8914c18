//! `POST /auth/password-reset`: mail a reset token to an account's
//! address.
//!
//! The answer must not tell whether the address has an account, neither
//! by what it says nor by how long it takes. So both cases run the same
//! code: parse, count the address's requests, draw and seal a token, and
//! one SQL statement that always counts the request (a write, so both
//! commit alike) and, only when the address has an account, stores the
//! token and its `user.password_reset_requested` event. The statement's
//! result is not even looked at.

use kit::db::ParameterValue;
use kit::domain::Email;
use kit::rate_limit::Limits;
use kit::{ApiError, db, gate, json};
use serde::{Deserialize, Serialize};
use spin_sdk::http::{Request, Response};

use crate::account_tokens::{self, Issued, Purpose};

/// The request body.
#[derive(Debug, Deserialize)]
struct ResetBody {
    email: String,
}

/// The answer, the same for every address.
#[derive(Debug, Serialize)]
struct Accepted {
    /// Always `accepted`.
    status: &'static str,
    /// What happens next.
    detail: &'static str,
}

/// The one answer.
const ACCEPTED: Accepted = Accepted {
    status: "accepted",
    detail: "if an account uses this address, a password reset token is on its way to it; \
             it is valid for 30 minutes",
};

/// Counts the request in the shard of this database connection.
const COUNT_REQUEST: &str = "counted AS (UPDATE password_reset_requests \
                             SET requests = requests + 1 WHERE shard = 1 + pg_backend_pid() % 16)";

/// Handles the request: 202 with the same body whatever the address.
///
/// # Errors
///
/// 400/413 for an unreadable body, 422 for a missing or invalid `email`
/// (the same for every address); 429 when the address's requests are
/// spent (counted for unknown addresses too).
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let body: ResetBody = json::parse(req)?;
    let email = Email::parse(&body.email).map_err(|e| ApiError::invalid("email", e))?;
    let quota = Limits::from_variables(true)?.login.map_or(0, |p| p.quota);
    gate::count_account_action("password-reset", quota, email.as_str())?;
    let issued = Issued::new(Purpose::PasswordReset)?;
    let conn = db::connect()?;
    account_tokens::issue(
        &conn,
        Purpose::PasswordReset,
        &[COUNT_REQUEST],
        "SELECT id, email FROM users WHERE email = $1",
        ParameterValue::Str(email.as_str().to_owned()),
        &issued,
    )?;
    json::respond(202, &ACCEPTED)
}
