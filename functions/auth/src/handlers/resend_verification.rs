//! `POST /auth/verify-email/resend`: another verification e-mail for the
//! caller's account, replacing the earlier tokens.

use kit::db::ParameterValue;
use kit::{ApiError, bearer, config, db, gate, json};
use serde::Serialize;
use spin_sdk::http::{Request, Response};

use crate::account_tokens::{self, Issued, Purpose};
use crate::users;

/// Verification e-mails an account may ask for per rate-limit window
/// (`rate_limit_window_seconds`); 0 turns the limit off.
pub const RESEND_LIMIT: &str = "email_verification_resend_limit";
/// Three per window.
pub const DEFAULT_RESEND_LIMIT: u64 = 3;

/// The answer.
#[derive(Debug, Serialize)]
struct Requested {
    /// Always `accepted`: the e-mail goes out with the event.
    status: &'static str,
}

/// Why no e-mail was asked for.
#[derive(Debug, thiserror::Error)]
enum ResendError {
    /// The address is verified already.
    #[error("the e-mail address is already verified")]
    AlreadyVerified,
    /// Anything else, already classified.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<ResendError> for ApiError {
    fn from(err: ResendError) -> Self {
        match err {
            ResendError::AlreadyVerified => ApiError::Refused {
                slug: "email-already-verified",
                title: "E-mail address already verified",
                detail: err.to_string(),
            },
            ResendError::Api(api) => api,
        }
    }
}

/// Handles the request: 202 `{"status": "accepted"}`; any body is ignored.
///
/// # Errors
///
/// 401 without a valid token; 409 `email-already-verified`; 429 when the
/// account's resends are spent.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    Ok(resend(req)?)
}

fn resend(req: &Request) -> Result<Response, ResendError> {
    let caller = bearer::authenticate(req)?;
    let limit = config::number(RESEND_LIMIT, DEFAULT_RESEND_LIMIT).map_err(ApiError::from)?;
    gate::count_account_action("verification-email", limit, &caller.id.to_string())?;
    let conn = db::connect()?;
    let user = users::find_by_id(&conn, caller.id)?
        .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
    if user.email_verified {
        return Err(ResendError::AlreadyVerified);
    }
    let issued = Issued::new(Purpose::VerifyEmail)?;
    let sent = account_tokens::issue(
        &conn,
        Purpose::VerifyEmail,
        &[],
        "SELECT id, email FROM users WHERE id = $1 AND email_verified_at IS NULL",
        ParameterValue::from(caller.id),
        &issued,
    )?;
    if !sent {
        // Verified (or deleted) since it was loaded a moment ago.
        return Err(ResendError::AlreadyVerified);
    }
    Ok(json::respond(202, &Requested { status: "accepted" })?)
}
