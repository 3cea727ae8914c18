//! `bridge admin grant|revoke <email>`: an operator changes a user's role.
//!
//! Self-registration only ever creates `user` accounts, so the first admin
//! has to come from someone with access to the database; this is that
//! door, named for what it does instead of a raw `UPDATE`. The role lives
//! in `users.role`, which login and refresh read, so the change is in the
//! user's next access token (a refresh picks it up). Access tokens already
//! issued keep the role they were issued with until they expire.

use std::fmt;

use anyhow::{Context, bail};

use crate::database::Database;

/// The roles an account can have (`users_role_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The default for every account.
    User,
    /// May manage the catalog and other users' content.
    Admin,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a role change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    /// The account's e-mail, as stored.
    pub email: String,
    /// Its role before.
    pub was: String,
    /// Its role now.
    pub now: Role,
}

impl fmt::Display for RoleChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.was == self.now.as_str() {
            write!(f, "{} was already {}", self.email, self.now)
        } else {
            write!(
                f,
                "{} is now {} (was {}); it takes effect with the next access token",
                self.email, self.now, self.was
            )
        }
    }
}

/// Sets the role of the account registered with `email` (compared as
/// stored: trimmed and lowercased).
///
/// # Errors
/// When no account has that e-mail, or the database fails.
pub async fn set_role(database: &Database, email: &str, role: Role) -> anyhow::Result<RoleChange> {
    let client = database.connect().await?;
    let row = client
        .query_opt(
            "WITH target AS (SELECT id, role FROM users WHERE email = lower(trim($1)) FOR UPDATE), \
             changed AS (UPDATE users u SET role = $2, updated_at = now() \
                         FROM target WHERE u.id = target.id RETURNING u.email) \
             SELECT changed.email, target.role FROM changed, target",
            &[&email, &role.as_str()],
        )
        .await
        .context("changing the role")?;
    let Some(row) = row else {
        bail!(
            "no account is registered with the e-mail {:?}",
            email.trim()
        );
    };
    Ok(RoleChange {
        email: row.get(0),
        was: row.get(1),
        now: role,
    })
}
