//! Setting a new password, by reset token or with the current password,
//! and signing the account out everywhere when it happens.
//!
//! One statement does all of the database's part: the new hash, the
//! account's next token generation, every refresh token revoked, every
//! outstanding reset token revoked, and the [`USER_PASSWORD_CHANGED`]
//! event. Then [`sign_out_everywhere`] records the new generation in
//! Redis, which turns away every access token issued before (see
//! `kit::bearer`).

use kit::db::{Connection, Doing as _, ParameterValue, Statement};
use kit::outbox::EventSpec;
use kit::{ApiError, bearer, cache};
use uuid::Uuid;

use crate::account_tokens::{self, PresentedToken, Purpose};
use crate::users;

/// `user.password_changed`: an account's password was changed (`how`:
/// `changed`, with the current password) or reset (`reset`, by a mailed
/// token); every session of the account was ended. Aggregate `users`,
/// subject = user id. Data, version 1:
///
/// ```json
/// {"version": 1, "user_id": "<uuid>", "email": "ada@example.com", "how": "reset"}
/// ```
pub const USER_PASSWORD_CHANGED: EventSpec = EventSpec {
    source: "/auth",
    kind: "user.password_changed",
    aggregate: "users",
    subject: "id",
    version: 1,
    fields: &[
        ("user_id", "changed.id"),
        ("email", "changed.email"),
        ("how", "changed.how"),
    ],
    only_when: None,
};

/// What the change left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    /// The account.
    pub user_id: Uuid,
    /// Its new token generation: what its new tokens carry.
    pub generation: u64,
}

/// What `changed` returns, and what [`Changed`] reads.
const RETURNING: &str = "RETURNING users.id, users.email, users.token_generation, \
                         users.id::text AS id_text";

/// Sets `password_hash` on the account of the reset `token` if the token
/// is good, spending it; the address counts as verified too (the token
/// came to it: `user.email_verified` when it was not yet). `None` when the
/// token was not good (any more).
///
/// # Errors
///
/// 503/500 on database failure.
pub fn reset(
    conn: &Connection,
    token: &PresentedToken,
    password_hash: &str,
) -> Result<Option<Changed>, ApiError> {
    let spend = account_tokens::spend_cte(Purpose::PasswordReset);
    let change = format!(
        "UPDATE users SET password_hash = $2, token_generation = token_generation + 1, \
         email_verified_at = coalesce(email_verified_at, now()), updated_at = now() \
         FROM spent WHERE users.id = spent.user_id {RETURNING}, 'reset'::text AS how, \
         users.email_verified_at = now() AS newly_verified"
    );
    // A first verification of the address is announced as by a
    // verification token (see `account_tokens::verify_email`).
    let statement = signing_out(
        kit::outbox::wrap_each(
            &[&USER_PASSWORD_CHANGED, &account_tokens::USER_EMAIL_VERIFIED],
            &[&spend],
            &change,
        ),
        Some("$1"),
    );
    let params = [
        ParameterValue::Str(token.hash()),
        ParameterValue::Str(password_hash.to_owned()),
    ];
    changed(conn, &statement, &params)
}

/// Replaces `current_hash` with `new_hash` on `user_id`'s account. `None`
/// when the account is gone or its password changed in the meantime.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn change(
    conn: &Connection,
    user_id: Uuid,
    current_hash: &str,
    new_hash: &str,
) -> Result<Option<Changed>, ApiError> {
    let change = format!(
        "UPDATE users SET password_hash = $2, token_generation = token_generation + 1, \
         updated_at = now() WHERE users.id = $1 AND users.password_hash = $3 \
         {RETURNING}, 'changed'::text AS how"
    );
    let statement = signing_out(USER_PASSWORD_CHANGED.wrap(&change), None);
    let params = [
        ParameterValue::from(user_id),
        ParameterValue::Str(new_hash.to_owned()),
        ParameterValue::Str(current_hash.to_owned()),
    ];
    changed(conn, &statement, &params)
}

/// Adds to `statement` (whose `changed` returns the account's `id`) the
/// revocation of its refresh tokens and outstanding reset tokens (except
/// the one being spent, hashed as `except`).
fn signing_out(statement: Statement, except: Option<&str>) -> Statement {
    statement
        .with(
            "ended AS (UPDATE refresh_tokens SET revoked_at = now() \
             WHERE revoked_at IS NULL AND user_id IN (SELECT id FROM changed))",
        )
        .with(account_tokens::revoke_outstanding_cte(
            "resets",
            Purpose::PasswordReset,
            "SELECT id FROM changed",
            except,
        ))
}

/// Runs a change and reads what it left behind.
fn changed(
    conn: &Connection,
    statement: &Statement,
    params: &[ParameterValue],
) -> Result<Option<Changed>, ApiError> {
    let rows = conn.rows(statement, params).doing("changing a password")?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let id: String = kit::db::column(row, 3, "id_text")?;
    Ok(Some(Changed {
        user_id: Uuid::parse_str(&id).map_err(|e| anyhow::anyhow!("users.id: {e}"))?,
        generation: users::generation(row, 2)?,
    }))
}

/// Records the account's new generation in Redis: from now on, every
/// access token issued before the change is refused everywhere.
///
/// # Errors
///
/// 503 when Redis is down: the password is changed and every refresh
/// token revoked, but access tokens issued before stay usable until they
/// expire (15 minutes at most), so the caller hears about it.
pub fn sign_out_everywhere(changed: &Changed) -> Result<(), ApiError> {
    let redis = cache::connect()?;
    bearer::revoke_generations_below(&redis, changed.user_id, changed.generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_changes_the_password_and_ends_every_session() {
        let sql = signing_out(
            USER_PASSWORD_CHANGED.wrap("UPDATE users SET x = 1"),
            Some("$1"),
        )
        .sql();
        assert!(sql.contains("INSERT INTO outbox"), "{sql}");
        assert!(sql.contains("'user.password_changed'"), "{sql}");
        assert!(sql.contains("ended AS (UPDATE refresh_tokens"), "{sql}");
        assert!(sql.contains("purpose = 'password_reset'"), "{sql}");
        assert!(sql.contains("token_hash <> $1"), "{sql}");
    }
}
