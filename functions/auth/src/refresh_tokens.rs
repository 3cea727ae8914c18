//! Refresh tokens: opaque, stored hashed, rotated on every use.
//!
//! A login starts a *family*. Each refresh spends the presented token and
//! issues its successor in the same family. Presenting a spent token again
//! means it was stolen (or replayed), so the whole family is revoked and
//! both the thief and the victim must log in again.

use anyhow::{Context, anyhow};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kit::ApiError;
use kit::db::{self, Connection, Doing as _, ParameterValue, Statement};
use kit::domain::Role;
use uuid::Uuid;

/// How long a refresh token lives (SQL interval).
const LIFETIME: &str = "30 days";

/// A refresh token in the clear: 32 random bytes, base64url. Only its
/// [`hash`](RefreshToken::hash) is stored.
pub struct RefreshToken(String);

impl RefreshToken {
    /// A new random token.
    ///
    /// # Errors
    ///
    /// When the system RNG fails.
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow!("random refresh token: {e}"))?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The token to hand to the client.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The stored form: hex SHA-256 of the token text.
    pub fn hash(&self) -> String {
        hash(&self.0)
    }
}

/// Hex SHA-256 of a presented token (any text: unknown tokens simply match
/// no row).
pub fn hash(token: &str) -> String {
    kit::digest::sha256_hex(token)
}

/// Stores `token` as the first of a new family for `user_id`.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn start_family(
    conn: &Connection,
    user_id: Uuid,
    token: &RefreshToken,
) -> Result<(), ApiError> {
    let sql = format!(
        "INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) \
         VALUES ($1, gen_random_uuid(), $2, now() + interval '{LIFETIME}')"
    );
    conn.execute(
        &sql,
        &[
            ParameterValue::from(user_id),
            ParameterValue::Str(token.hash()),
        ],
    )
    .doing("storing a refresh token")?;
    Ok(())
}

/// Spends the token hashed as `presented` and stores `next` in its family,
/// in one statement, unless `verified_only` and the owner's address is not
/// verified: then the token is spent and nothing is stored (no successor
/// nobody was given). Returns the owner as it stands now ([`Rotated`]), or
/// `None` when the presented token is unknown, expired, revoked or
/// already spent.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn rotate(
    conn: &Connection,
    presented: &str,
    next: &RefreshToken,
    verified_only: bool,
) -> Result<Option<Rotated>, ApiError> {
    let sql = Statement::new(
        "SELECT u.id::text, u.role, u.token_generation, u.email_verified_at IS NOT NULL \
         FROM spent JOIN users u ON u.id = spent.user_id",
    )
    .with(
        "spent AS ( \
           UPDATE refresh_tokens SET used_at = now() \
           WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now() \
           RETURNING user_id, family_id)",
    )
    // Postgres runs a data-modifying CTE whether or not the query reads it.
    .with(format!(
        "successor AS ( \
           INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) \
           SELECT spent.user_id, spent.family_id, $2, now() + interval '{LIFETIME}' \
           FROM spent JOIN users u ON u.id = spent.user_id \
           WHERE NOT $3::bool OR u.email_verified_at IS NOT NULL \
           RETURNING user_id)"
    ));
    let params = [
        ParameterValue::Str(hash(presented)),
        ParameterValue::Str(next.hash()),
        ParameterValue::Boolean(verified_only),
    ];
    let Some(row) = conn
        .optional(&sql, &params)
        .doing("rotating a refresh token")?
    else {
        return Ok(None);
    };
    let id: String = db::column(&row, 0, "id")?;
    let role: String = db::column(&row, 1, "role")?;
    let id = Uuid::parse_str(&id).context("users.id is not a uuid")?;
    let role = role.parse().map_err(|e: String| anyhow!(e))?;
    Ok(Some(Rotated {
        user_id: id,
        role,
        generation: crate::users::generation(&row, 2)?,
        email_verified: db::column(&row, 3, "email_verified")?,
    }))
}

/// The account a rotated refresh token belongs to.
#[derive(Debug)]
pub struct Rotated {
    /// Its id.
    pub user_id: Uuid,
    /// Its role now (a grant or revoke since the last token shows).
    pub role: Role,
    /// Its token generation now (see `users.token_generation`).
    pub generation: u64,
    /// Whether its address is verified.
    pub email_verified: bool,
}

/// If the presented token was already spent, revokes its whole family
/// (reuse detection). Does nothing for unknown or merely expired tokens.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn revoke_family_if_reused(conn: &Connection, presented: &str) -> Result<bool, ApiError> {
    let revoked = conn
        .execute(
            "UPDATE refresh_tokens SET revoked_at = now() \
             WHERE revoked_at IS NULL AND family_id IN ( \
               SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL)",
            &[ParameterValue::Str(hash(presented))],
        )
        .doing("revoking a reused refresh token family")?;
    Ok(revoked > 0)
}

/// Revokes the family of a token `user_id` presents at logout; another
/// user's token is silently ignored.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn revoke_family(conn: &Connection, user_id: Uuid, presented: &str) -> Result<(), ApiError> {
    conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() \
         WHERE revoked_at IS NULL AND family_id IN ( \
           SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2)",
        &[
            ParameterValue::Str(hash(presented)),
            ParameterValue::from(user_id),
        ],
    )
    .doing("revoking a refresh token family")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_random_bytes_in_base64url() {
        let a = RefreshToken::generate().unwrap();
        let b = RefreshToken::generate().unwrap();
        assert_eq!(a.0.len(), 43);
        assert_ne!(a.0, b.0);
        assert!(!a.0.contains(['+', '/', '=']));
    }

    #[test]
    fn the_stored_hash_is_hex_sha256() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
