//! One-time tokens mailed to an account's address: verifying the address
//! and resetting a forgotten password (table `account_tokens`).
//!
//! A token is 32 random bytes in base64url (43 characters). Only its
//! SHA-256 is stored; the token itself leaves the function only sealed
//! (`spinmesh_delivery::seal`, under the `message_sealing_key` variable,
//! bound to the event type) inside the event that asks for the e-mail, so
//! the outbox, the brokers and every sink that copies events hold nothing
//! usable. Tokens are looked up by hash *and* purpose: a reset token never
//! verifies an address, and an access token (a JWT, not 43 characters of
//! base64url) is refused before any lookup.
//!
//! Issuing a token revokes the account's outstanding ones of the same
//! purpose, and spending one is a conditional `UPDATE` in the same
//! statement as its effect, so each token works once, and only the latest.

use anyhow::anyhow;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kit::db::{self, Connection, Doing as _, ParameterValue, Statement};
use kit::outbox::{self, EventSpec};
use kit::{ApiError, config};
use spinmesh_delivery::seal;

/// Seconds an e-mail verification token stays valid.
pub const EMAIL_VERIFICATION_TTL_SECONDS: &str = "email_verification_ttl_seconds";
/// One day.
pub const DEFAULT_EMAIL_VERIFICATION_TTL_SECONDS: u64 = 24 * 60 * 60;
/// Seconds a password reset token stays valid: 30 minutes.
pub const PASSWORD_RESET_TTL_SECONDS: u64 = 30 * 60;

/// Bytes of randomness in a token.
const TOKEN_BYTES: usize = 32;
/// Characters of a token: 32 bytes in base64url without padding.
const TOKEN_CHARS: usize = 43;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Proving the account reads its e-mail address.
    VerifyEmail,
    /// Setting a new password without the old one.
    PasswordReset,
}

impl Purpose {
    /// The stored form (`account_tokens.purpose`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
        }
    }

    /// The event that carries a new token of this purpose; its type is
    /// also what the seal is bound to.
    pub fn event(self) -> &'static EventSpec {
        match self {
            Self::VerifyEmail => &USER_VERIFICATION_REQUESTED,
            Self::PasswordReset => &USER_PASSWORD_RESET_REQUESTED,
        }
    }

    /// How long a new token stays valid, in seconds.
    fn lifetime_secs(self) -> Result<u64, ApiError> {
        Ok(match self {
            Self::VerifyEmail => config::number(
                EMAIL_VERIFICATION_TTL_SECONDS,
                DEFAULT_EMAIL_VERIFICATION_TTL_SECONDS,
            )?
            .max(1),
            Self::PasswordReset => PASSWORD_RESET_TTL_SECONDS,
        })
    }
}

/// `user.verification_requested`: an account needs its address verified
/// (at registration, on every register route, and on a resend). Aggregate
/// `users`, subject = user id. Data, version 1:
///
/// ```json
/// {"version": 1, "user_id": "<uuid>", "email": "ada@example.com",
///  "token": "v1.<sealed token>", "expires_at": "2026-05-02T12:00:00.000000Z"}
/// ```
///
/// `token` opens with `spinmesh_delivery::seal::open` under
/// `message_sealing_key` and the event type as the aad; the mail links to
/// `GET /auth/verify-email?token=<token>`.
pub const USER_VERIFICATION_REQUESTED: EventSpec = EventSpec {
    source: "/auth",
    kind: "user.verification_requested",
    aggregate: "users",
    subject: "id",
    version: 1,
    fields: TOKEN_EVENT_FIELDS,
    only_when: None,
};

/// `user.password_reset_requested`: someone asked to reset the password
/// of an existing account (nothing is emitted for an unknown address).
/// Aggregate `users`, subject = user id. Data, version 1, as
/// [`USER_VERIFICATION_REQUESTED`]'s; the mail shows the token for
/// `POST /auth/password-reset/confirm`.
pub const USER_PASSWORD_RESET_REQUESTED: EventSpec = EventSpec {
    source: "/auth",
    kind: "user.password_reset_requested",
    aggregate: "users",
    subject: "id",
    version: 1,
    fields: TOKEN_EVENT_FIELDS,
    only_when: None,
};

/// The payload of both token events, read from a change returning `id`,
/// `email`, `sealed_token` and `token_expires_at`.
const TOKEN_EVENT_FIELDS: &[(&str, &str)] = &[
    ("user_id", "changed.id"),
    ("email", "changed.email"),
    ("token", "changed.sealed_token"),
    ("expires_at", kit::rfc3339!("changed.token_expires_at")),
];

/// A new token, in the forms it is stored and sent in.
pub struct Issued {
    /// Hex SHA-256 of the token: the stored form.
    pub hash: String,
    /// The token sealed for its event.
    pub sealed: String,
    /// Its lifetime as SQL interval text (`"1800 seconds"`).
    pub lifetime: String,
}

impl Issued {
    /// Draws a token for `purpose` and seals it.
    ///
    /// # Errors
    ///
    /// 500 when the RNG fails or `message_sealing_key` (or the lifetime
    /// variable) is missing or invalid.
    pub fn new(purpose: Purpose) -> Result<Self, ApiError> {
        let lifetime = purpose.lifetime_secs()?;
        let key = config::get(seal::SEALING_KEY_VARIABLE)?;
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| anyhow!("random one-time token: {e}"))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| anyhow!("random seal nonce: {e}"))?;
        Ok(Self {
            hash: kit::digest::sha256_hex(&token),
            sealed: seal::seal(&key, purpose.event().kind, token.as_bytes(), nonce),
            lifetime: format!("{lifetime} seconds"),
        })
    }
}

/// A token as a client presents it, well-formed: 43 characters of
/// base64url that decode to 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedToken(String);

impl PresentedToken {
    /// Checks the shape (surrounding whitespace is ignored).
    ///
    /// # Errors
    ///
    /// A message for the client when it cannot be one of our tokens.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("token is required");
        }
        let decodes = raw.len() == TOKEN_CHARS
            && URL_SAFE_NO_PAD
                .decode(raw)
                .is_ok_and(|bytes| bytes.len() == TOKEN_BYTES);
        if decodes {
            Ok(Self(raw.to_owned()))
        } else {
            Err("token must be the 43-character token from the e-mail")
        }
    }

    /// The token as presented.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stored form: hex SHA-256.
    pub fn hash(&self) -> String {
        kit::digest::sha256_hex(&self.0)
    }
}

/// Why a well-formed token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token of this purpose has this hash.
    Unknown,
    /// It has been used.
    Used,
    /// Its time is up.
    Expired,
    /// A newer token of the same purpose, or a password change, revoked it.
    Revoked,
}

impl From<Refusal> for ApiError {
    /// 422 for an unknown token (as for a malformed one); 410 for one that
    /// existed but is spent for good.
    fn from(refusal: Refusal) -> Self {
        let gone = |slug, title, detail: &str| ApiError::Gone {
            slug,
            title,
            detail: detail.to_owned(),
        };
        match refusal {
            Refusal::Unknown => ApiError::invalid("token", "the token is not valid"),
            Refusal::Used => gone(
                "token-used",
                "Token already used",
                "this token has already been used",
            ),
            Refusal::Expired => gone(
                "token-expired",
                "Token expired",
                "this token has expired; ask for a new one",
            ),
            Refusal::Revoked => gone(
                "token-expired",
                "Token expired",
                "this token has been replaced by a newer one; use the latest e-mail",
            ),
        }
    }
}

/// Why `token` cannot be spent for `purpose` now, or `None` when it can.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn refusal(
    conn: &Connection,
    purpose: Purpose,
    token: &PresentedToken,
) -> Result<Option<Refusal>, ApiError> {
    let sql = Statement::new(
        "SELECT used_at IS NOT NULL, revoked_at IS NOT NULL, expires_at <= now() \
         FROM account_tokens WHERE token_hash = $1 AND purpose = $2",
    );
    let params = [
        ParameterValue::Str(token.hash()),
        ParameterValue::Str(purpose.as_str().to_owned()),
    ];
    let Some(row) = conn.optional(&sql, &params).doing("looking a token up")? else {
        return Ok(Some(Refusal::Unknown));
    };
    let used: bool = db::column(&row, 0, "used")?;
    let revoked: bool = db::column(&row, 1, "revoked")?;
    let expired: bool = db::column(&row, 2, "expired")?;
    Ok(if used {
        Some(Refusal::Used)
    } else if revoked {
        Some(Refusal::Revoked)
    } else if expired {
        Some(Refusal::Expired)
    } else {
        None
    })
}

/// The CTE `spent`: spends the token hashed as `$1` if it is good for
/// `purpose`, returning its `user_id` (no row otherwise; of two requests
/// racing with the same token, one gets the row).
pub fn spend_cte(purpose: Purpose) -> String {
    format!(
        "spent AS (UPDATE account_tokens SET used_at = now() \
         WHERE token_hash = $1 AND purpose = '{}' AND used_at IS NULL \
         AND revoked_at IS NULL AND expires_at > now() RETURNING user_id)",
        purpose.as_str()
    )
}

/// A CTE named `name` revoking the outstanding `purpose` tokens of the
/// accounts in `accounts` (a query of user ids), except `except` (an SQL
/// expression of a token hash, e.g. `$1`, for the one being spent: one
/// statement must not update a row twice).
pub fn revoke_outstanding_cte(
    name: &str,
    purpose: Purpose,
    accounts: &str,
    except: Option<&str>,
) -> String {
    let except = except
        .map(|hash| format!(" AND token_hash <> {hash}"))
        .unwrap_or_default();
    format!(
        "{name} AS (UPDATE account_tokens SET revoked_at = now() \
         WHERE purpose = '{}' AND used_at IS NULL AND revoked_at IS NULL \
         AND user_id IN ({accounts}){except})",
        purpose.as_str()
    )
}

/// Stores `issued` for the account `account` selects (`SELECT id, email
/// FROM users WHERE … $1 …`, at most one row), revoking its outstanding
/// tokens of `purpose` and emitting the purpose's event with the token
/// sealed: one statement, run after the `prelude` CTEs. Returns whether
/// a token was issued (no account, nothing written).
///
/// # Errors
///
/// 503/500 on database failure.
pub fn issue(
    conn: &Connection,
    purpose: Purpose,
    prelude: &[&str],
    account: &str,
    account_param: ParameterValue,
    issued: &Issued,
) -> Result<bool, ApiError> {
    let account = format!("account AS ({account})");
    let revoked = revoke_outstanding_cte("revoked", purpose, "SELECT id FROM account", None);
    let insert = format!(
        "issued AS (INSERT INTO account_tokens (token_hash, user_id, purpose, expires_at) \
         SELECT $2, id, '{}', now() + $4::text::interval FROM account \
         RETURNING user_id, expires_at)",
        purpose.as_str()
    );
    let ctes: Vec<&str> = prelude
        .iter()
        .copied()
        .chain([account.as_str(), revoked.as_str(), insert.as_str()])
        .collect();
    let change = "SELECT issued.user_id AS id, account.email, $3::text AS sealed_token, \
                  issued.expires_at AS token_expires_at \
                  FROM issued JOIN account ON account.id = issued.user_id";
    let params = [
        account_param,
        ParameterValue::Str(issued.hash.clone()),
        ParameterValue::Str(issued.sealed.clone()),
        ParameterValue::Str(issued.lifetime.clone()),
    ];
    let rows = outbox::query_after(conn, purpose.event(), &ctes, change, &params)
        .doing("issuing a one-time token")?;
    Ok(!rows.is_empty())
}

/// `user.email_verified`: an account proved it reads its address (a
/// verification token was spent and the account was not verified yet).
/// Aggregate `users`, subject = user id. Data, version 1:
///
/// ```json
/// {"version": 1, "user_id": "<uuid>", "email": "ada@example.com"}
/// ```
pub const USER_EMAIL_VERIFIED: EventSpec = EventSpec {
    source: "/auth",
    kind: "user.email_verified",
    aggregate: "users",
    subject: "id",
    version: 1,
    fields: &[("user_id", "changed.id"), ("email", "changed.email")],
    only_when: Some("changed.newly_verified"),
};

/// Spends an e-mail verification `token`, marks its account verified
/// (revoking the account's other verification tokens) and emits
/// [`USER_EMAIL_VERIFIED`] when the account was not verified yet, in one
/// statement.
///
/// # Errors
///
/// The [`Refusal`] when the token is not good; 503/500 on database failure.
pub fn verify_email(conn: &Connection, token: &PresentedToken) -> Result<(), VerifyError> {
    let purpose = Purpose::VerifyEmail;
    let spent = spend_cte(purpose);
    let others = revoke_outstanding_cte("others", purpose, "SELECT user_id FROM spent", Some("$1"));
    // One statement sees one `now()`: an address verified before keeps its
    // earlier time, so only a first verification equals it.
    let change = "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()) \
                  FROM spent WHERE users.id = spent.user_id \
                  RETURNING users.id, users.email, users.email_verified_at = now() AS newly_verified";
    let rows = outbox::query_after(
        conn,
        &USER_EMAIL_VERIFIED,
        &[spent.as_str(), others.as_str()],
        change,
        &[ParameterValue::Str(token.hash())],
    )
    .doing("verifying an e-mail address")?;
    if !rows.is_empty() {
        return Ok(());
    }
    // Not spent: say why. A token that looks good now lost a race to a
    // request that spent it a moment ago.
    Err(refusal(conn, purpose, token)?
        .unwrap_or(Refusal::Used)
        .into())
}

/// Why an e-mail address could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The token is unknown or spent.
    #[error("{0:?}")]
    Refused(Refusal),
    /// Anything else, already classified.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<Refusal> for VerifyError {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<VerifyError> for ApiError {
    fn from(err: VerifyError) -> Self {
        match err {
            VerifyError::Refused(refusal) => refusal.into(),
            VerifyError::Api(api) => api,
        }
    }
}

impl From<kit::db::Error> for VerifyError {
    fn from(err: kit::db::Error) -> Self {
        Self::Api(err.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_tokens_are_43_characters_of_base64url() {
        let good = URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert_eq!(PresentedToken::parse(&good).unwrap().0, good);
        assert!(
            PresentedToken::parse(&format!(" {good}\n")).is_ok(),
            "trimmed"
        );
        let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let cases = [
            ("", "empty"),
            ("   ", "blank"),
            (&good[..42], "42 characters"),
            (jwt, "an access token"),
            (
                "+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+",
                "standard base64",
            ),
            (
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
                "non-canonical last character",
            ),
            ("ééééééééééééééééééééé", "not ASCII"),
        ];
        for (raw, why) in cases {
            assert!(PresentedToken::parse(raw).is_err(), "{why}");
        }
    }

    #[test]
    fn the_stored_form_is_the_sha256_of_the_token() {
        let token = PresentedToken::parse(&URL_SAFE_NO_PAD.encode([0u8; 32])).unwrap();
        assert_eq!(token.hash(), kit::digest::sha256_hex(&token.0));
        assert_eq!(token.hash().len(), 64);
    }

    #[test]
    fn refusals_are_422_for_unknown_and_410_for_spent_tokens() {
        let status = |r| ApiError::from(r).status();
        assert_eq!(status(Refusal::Unknown), 422);
        assert_eq!(status(Refusal::Used), 410);
        assert_eq!(status(Refusal::Expired), 410);
        assert_eq!(status(Refusal::Revoked), 410);
        let used = ApiError::from(Refusal::Used).problem();
        assert_eq!(used.kind, "https://spinmesh.dev/problems/token-used");
    }

    #[test]
    fn each_purpose_seals_for_its_own_event() {
        assert_eq!(
            Purpose::VerifyEmail.event().kind,
            "user.verification_requested"
        );
        assert_eq!(
            Purpose::PasswordReset.event().kind,
            "user.password_reset_requested"
        );
        assert!(spend_cte(Purpose::PasswordReset).contains("purpose = 'password_reset'"));
        let revoke = revoke_outstanding_cte("r", Purpose::VerifyEmail, "SELECT 1", Some("$1"));
        assert!(
            revoke.ends_with("AND user_id IN (SELECT 1) AND token_hash <> $1)"),
            "{revoke}"
        );
    }
}
