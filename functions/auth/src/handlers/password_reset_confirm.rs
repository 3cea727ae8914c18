//! `POST /auth/password-reset/confirm`: set a new password with the token
//! from the reset e-mail, and sign the account out everywhere.

use kit::domain::Password;
use kit::{ApiError, FieldError, db, json};
use serde::{Deserialize, Serialize};
use spin_sdk::http::{Request, Response};

use crate::account_tokens::{self, PresentedToken, Purpose, Refusal};
use crate::password_changes;
use crate::passwords;

/// The request body as sent.
#[derive(Debug, Deserialize)]
struct ConfirmBody {
    token: String,
    new_password: String,
}

/// A confirmation whose every field is well-formed.
#[derive(Debug)]
struct Confirmation {
    token: PresentedToken,
    password: Password,
}

impl TryFrom<ConfirmBody> for Confirmation {
    type Error = ApiError;

    /// Reports every bad field at once (422).
    fn try_from(body: ConfirmBody) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let token = PresentedToken::parse(&body.token)
            .map_err(|e| errors.push(FieldError::new("token", e)))
            .ok();
        let password = Password::parse(body.new_password)
            .map_err(|e| errors.push(FieldError::new("new_password", e)))
            .ok();
        match (token, password) {
            (Some(token), Some(password)) => Ok(Self { token, password }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// The answer.
#[derive(Debug, Serialize)]
struct Reset {
    /// Always `password_reset`.
    status: &'static str,
}

/// Handles the request: 200 `{"status": "password_reset"}`. Every refresh
/// token and every access token of the account stops working.
///
/// # Errors
///
/// 400/413 for an unreadable body; 422 for a malformed or unknown token
/// or a password outside the policy; 410 `token-used`/`token-expired`;
/// 503 when Redis cannot record the sign-out (the password is set).
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let confirmation: Confirmation = json::parse::<ConfirmBody>(req)?.try_into()?;
    let conn = db::connect()?;
    // A cheap look first, so a bad token costs no password hashing.
    if let Some(refusal) =
        account_tokens::refusal(&conn, Purpose::PasswordReset, &confirmation.token)?
    {
        return Err(refusal.into());
    }
    let hash = passwords::hash(&confirmation.password)?;
    let Some(changed) = password_changes::reset(&conn, &confirmation.token, &hash)? else {
        // Spent or revoked between the look and the change.
        let refusal = account_tokens::refusal(&conn, Purpose::PasswordReset, &confirmation.token)?;
        return Err(refusal.unwrap_or(Refusal::Used).into());
    };
    password_changes::sign_out_everywhere(&changed)?;
    json::respond(
        200,
        &Reset {
            status: "password_reset",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_field_is_reported() {
        let body = ConfirmBody {
            token: "eyJ.a.jwt".into(),
            new_password: "short".into(),
        };
        let Err(ApiError::Validation(errors)) = Confirmation::try_from(body) else {
            panic!("expected 422");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["token", "new_password"]);
    }
}
