//! Spin variables, read with errors that say which variable is wrong.
//!
//! A missing or broken variable is an operator mistake, not the caller's:
//! it becomes a 500 whose log line names the variable.

use spin_sdk::variables;

use crate::jwt::{TokenSigner, TokenVerifier};
use crate::problem::ApiError;

/// Postgres connection URL.
pub const DATABASE_URL: &str = "database_url";
/// Redis connection URL.
pub const REDIS_URL: &str = "redis_url";
/// Standard base64 of the 64-byte Ed25519 key pair (secret; auth only).
pub const JWT_PRIVATE_KEY: &str = "jwt_private_key";
/// Standard base64 of the 32-byte Ed25519 public key.
pub const JWT_PUBLIC_KEY: &str = "jwt_public_key";
/// Expected and issued `iss`.
pub const JWT_ISSUER: &str = "jwt_issuer";
/// Expected and issued `aud`.
pub const JWT_AUDIENCE: &str = "jwt_audience";
/// Shared secret (its UTF-8 bytes are the HMAC-SHA256 key) with which the
/// bridge signs CloudEvent deliveries; see [`crate::cloudevent`].
pub const BRIDGE_SIGNING_SECRET: &str = "bridge_signing_secret";
/// Key (its UTF-8 bytes) of the HMAC that vouches for a verified-token
/// mark in Redis (secret; every component that authenticates).
pub const TOKEN_MARK_SECRET: &str = "token_mark_secret";
/// Seconds an order may stay unpaid before the clock cancels it.
pub const ORDER_PAYMENT_TIMEOUT_SECONDS: &str = "order_payment_timeout_seconds";
/// Where the notifications component POSTs `webhook` notifications.
pub const NOTIFICATION_WEBHOOK_URL: &str = "notification_webhook_url";

/// A variable that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not defined for this component (missing from the manifest or unset).
    #[error("Spin variable `{0}` is not set")]
    Missing(&'static str),
    /// The host could not provide it.
    #[error("Spin variable `{name}` could not be read: {reason}")]
    Unreadable {
        /// The variable.
        name: &'static str,
        /// The host's error.
        reason: String,
    },
    /// Defined, but its value is unusable.
    #[error("Spin variable `{name}` is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}

impl From<ConfigError> for ApiError {
    fn from(err: ConfigError) -> Self {
        ApiError::Internal(err.into())
    }
}

/// Reads a variable; an empty value counts as missing.
///
/// # Errors
///
/// [`ConfigError::Missing`] or [`ConfigError::Unreadable`].
pub fn get(name: &'static str) -> Result<String, ConfigError> {
    match variables::get(name) {
        Ok(value) if value.trim().is_empty() => Err(ConfigError::Missing(name)),
        Ok(value) => Ok(value),
        Err(variables::Error::Undefined(_)) => Err(ConfigError::Missing(name)),
        Err(err) => Err(ConfigError::Unreadable {
            name,
            reason: format!("{err:?}"),
        }),
    }
}

/// A whole number from `name` (a count, seconds), or `default` when it is
/// not set.
///
/// # Errors
///
/// [`ConfigError::Invalid`] when the value is not a whole number, or
/// [`ConfigError::Unreadable`].
pub fn number(name: &'static str, default: u64) -> Result<u64, ConfigError> {
    match get(name) {
        Ok(raw) => raw.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            reason: format!("{raw:?} is not a whole number"),
        }),
        Err(ConfigError::Missing(_)) => Ok(default),
        Err(err) => Err(err),
    }
}

/// A yes/no switch from `name` (`true`/`false`, also `1`/`0`, `yes`/`no`,
/// `on`/`off`, in any case), or `default` when it is not set.
///
/// # Errors
///
/// [`ConfigError::Invalid`] for any other value, or
/// [`ConfigError::Unreadable`].
pub fn flag(name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match get(name) {
        Ok(raw) => parse_flag(&raw).ok_or_else(|| ConfigError::Invalid {
            name,
            reason: format!("{raw:?} is not true or false"),
        }),
        Err(ConfigError::Missing(_)) => Ok(default),
        Err(err) => Err(err),
    }
}

/// The plain-Rust core of [`flag`].
fn parse_flag(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The verifier built from `jwt_public_key`, `jwt_issuer`, `jwt_audience`.
///
/// # Errors
///
/// When a variable is missing or the key does not parse.
pub fn token_verifier() -> Result<TokenVerifier, ConfigError> {
    let (issuer, audience) = (get(JWT_ISSUER)?, get(JWT_AUDIENCE)?);
    TokenVerifier::from_base64(&get(JWT_PUBLIC_KEY)?, &issuer, &audience).map_err(|e| {
        ConfigError::Invalid {
            name: JWT_PUBLIC_KEY,
            reason: e.to_string(),
        }
    })
}

/// The signer built from `jwt_private_key`, `jwt_issuer`, `jwt_audience`.
///
/// # Errors
///
/// When a variable is missing or the key does not parse.
pub fn token_signer() -> Result<TokenSigner, ConfigError> {
    let (issuer, audience) = (get(JWT_ISSUER)?, get(JWT_AUDIENCE)?);
    TokenSigner::from_base64(&get(JWT_PRIVATE_KEY)?, &issuer, &audience).map_err(|e| {
        ConfigError::Invalid {
            name: JWT_PRIVATE_KEY,
            reason: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_the_usual_spellings_and_nothing_else() {
        for (raw, expected) in [
            ("true", Some(true)),
            (" TRUE ", Some(true)),
            ("1", Some(true)),
            ("on", Some(true)),
            ("false", Some(false)),
            ("No", Some(false)),
            ("0", Some(false)),
            ("maybe", None),
            ("2", None),
        ] {
            assert_eq!(parse_flag(raw), expected, "{raw:?}");
        }
    }
}
