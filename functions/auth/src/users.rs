//! The `users` table.
//!
//! Emails are stored lowercased (unique constraint `users_email_key`);
//! usernames keep their case but are unique case-insensitively (index
//! `users_username_lower_key`). Uniqueness is left to the database: an
//! insert either succeeds or fails with SQLSTATE 23505, with no
//! check-then-insert race.
//!
//! Registration, login and profile changes are announced as events
//! ([`USER_REGISTERED`], [`USER_LOGGED_IN`], [`USER_UPDATED`]) written in the same statement as the row change, via
//! [`kit::outbox`]. A registration also issues the account's first
//! e-mail verification token, announced as
//! [`USER_VERIFICATION_REQUESTED`](crate::account_tokens::USER_VERIFICATION_REQUESTED)
//! in that same statement.

use anyhow::Context;
use kit::ApiError;
use kit::db::{self, Connection, DbValue, Doing as _, ParameterValue, Statement, text_or_null};
use kit::domain::{Email, Role, Username};
use kit::outbox::{self, EventSpec};
use serde::Serialize;
use uuid::Uuid;

use crate::account_tokens::{self, Issued, Purpose};

/// A user as the API shows it (never with the password hash).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Primary key.
    pub id: Uuid,
    /// Lowercased e-mail address.
    pub email: String,
    /// Optional public handle.
    pub username: Option<String>,
    /// `user` or `admin`.
    pub role: Role,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Whether the account has proved it reads its e-mail address.
    pub email_verified: bool,
}

/// A user with the stored password hash, for login only.
pub struct Credentials {
    /// The user.
    pub user: User,
    /// PHC string.
    pub password_hash: String,
    /// The account's token generation: what access tokens issued now
    /// carry (see `kit::bearer`).
    pub generation: u64,
}

/// The unique constraint on e-mails.
const EMAIL_KEY: &str = "users_email_key";
/// The case-insensitive unique index on usernames.
const USERNAME_KEY: &str = "users_username_lower_key";

/// A write rejected by a unique constraint, or a database failure.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Another account has this e-mail.
    #[error("email already registered")]
    EmailTaken,
    /// Another account has this username (case-insensitively).
    #[error("username already taken")]
    UsernameTaken,
    /// Anything else.
    #[error(transparent)]
    Db(#[from] ApiError),
}

/// The user columns, in the order [`from_row`] reads them.
fn columns() -> String {
    format!(
        "id::text, email, username, role, {}, email_verified_at IS NOT NULL",
        kit::rfc3339!("created_at")
    )
}

/// How many columns [`columns`] lists.
const COLUMNS: usize = 6;

fn from_row(row: &[DbValue]) -> anyhow::Result<User> {
    let id: String = db::column(row, 0, "id")?;
    let role: String = db::column(row, 3, "role")?;
    Ok(User {
        id: Uuid::parse_str(&id).context("users.id is not a uuid")?,
        email: db::column(row, 1, "email")?,
        username: db::column(row, 2, "username")?,
        role: role.parse().map_err(|e: String| anyhow::anyhow!(e))?,
        created_at: db::column(row, 4, "created_at")?,
        email_verified: db::column(row, 5, "email_verified")?,
    })
}

/// A stored generation (a non-negative `bigint`) as the claim carries it.
///
/// # Errors
///
/// When the column is absent, not a `bigint` or negative.
pub fn generation(row: &[DbValue], index: usize) -> anyhow::Result<u64> {
    let stored: i64 = db::column(row, index, "token_generation")?;
    u64::try_from(stored).context("users.token_generation is negative")
}

fn first_user(rows: &[Vec<DbValue>]) -> Result<Option<User>, ApiError> {
    db::decode_first(rows, from_row)
}

/// Tells which account field a unique violation is about, by the
/// constraint the database names (in any of the forms Spin reports).
fn write_error(err: db::Error, context: &str) -> WriteError {
    match err.unique_violation() {
        Some(Some(USERNAME_KEY)) => WriteError::UsernameTaken,
        Some(Some(EMAIL_KEY)) => WriteError::EmailTaken,
        _ => WriteError::Db(err.doing(context).into()),
    }
}

/// `user.registered`, emitted with every new account (aggregate `users`,
/// subject = user id). Data, version 1:
///
/// ```json
/// {"version": 1, "user_id": "<uuid>", "email": "ada@example.com", "username": "ada" | null,
///  "revision": 1}
/// ```
///
/// `revision` counts the account's changes (1 here, then one more with
/// every [`USER_UPDATED`]), so a projection can tell a newer state from an
/// older one whatever order events arrive in. Events written before it
/// existed lack it; read it as 1.
pub const USER_REGISTERED: EventSpec = EventSpec {
    source: "/auth",
    kind: "user.registered",
    aggregate: "users",
    subject: "id",
    version: 1,
    fields: &[
        ("user_id", "changed.id"),
        ("email", "changed.email"),
        ("username", "changed.username"),
        ("revision", "changed.revision"),
    ],
    only_when: None,
};

/// `user.updated`, emitted with every change to an account's public
/// profile through `PATCH /auth/me` (aggregate `users`, subject = user
/// id). Data, version 1:
///
/// ```json
/// {"version": 1, "user_id": "<uuid>", "username": "ada_l", "revision": 2}
/// ```
pub const USER_UPDATED: EventSpec = EventSpec {
    source: "/auth",
    kind: "user.updated",
    aggregate: "users",
    subject: "id",
    version: 1,
    fields: &[
        ("user_id", "changed.id"),
        ("username", "changed.username"),
        ("revision", "changed.revision"),
    ],
    only_when: None,
};

/// `user.logged_in`, emitted with every successful password login
/// (aggregate `users`, subject = user id). Data, version 1:
///
/// ```json
/// {"version": 1, "user_id": "<uuid>"}
/// ```
pub const USER_LOGGED_IN: EventSpec = EventSpec {
    source: "/auth",
    kind: "user.logged_in",
    aggregate: "users",
    subject: "id",
    version: 1,
    fields: &[("user_id", "changed.id")],
    only_when: None,
};

/// Inserts a new user with role `user`, emitting [`USER_REGISTERED`],
/// and stores `verification` as its first e-mail verification token,
/// emitting [`account_tokens::USER_VERIFICATION_REQUESTED`] with it sealed:
/// one statement, so an account never exists without its token and event.
///
/// # Errors
///
/// [`WriteError::EmailTaken`]/[`WriteError::UsernameTaken`] on duplicates.
pub fn insert(
    conn: &Connection,
    email: &Email,
    username: Option<&Username>,
    password_hash: &str,
    verification: &Issued,
) -> Result<User, WriteError> {
    // `changed` also returns what the verification event reads
    // (`sealed_token`, `token_expires_at`), so both events come from it.
    let change = format!(
        "INSERT INTO users (email, username, password_hash) VALUES ($1, $2, $3) \
         RETURNING {}, revision, $5::text AS sealed_token, \
         now() + $6::text::interval AS token_expires_at",
        columns()
    );
    let statement = outbox::wrap_each(
        &[
            &USER_REGISTERED,
            &account_tokens::USER_VERIFICATION_REQUESTED,
        ],
        &[],
        &change,
    )
    .with(format!(
        "issued AS (INSERT INTO account_tokens (token_hash, user_id, purpose, expires_at) \
         SELECT $4, changed.id::uuid, '{}', changed.token_expires_at FROM changed)",
        Purpose::VerifyEmail.as_str()
    ));
    let params = [
        ParameterValue::Str(email.as_str().to_owned()),
        text_or_null(username.map(Username::as_str)),
        ParameterValue::Str(password_hash.to_owned()),
        ParameterValue::Str(verification.hash.clone()),
        ParameterValue::Str(verification.sealed.clone()),
        ParameterValue::Str(verification.lifetime.clone()),
    ];
    let rows = conn
        .rows(&statement, &params)
        .map_err(|e| write_error(e, "inserting a user"))?;
    first_user(&rows)?.ok_or_else(|| {
        WriteError::Db(ApiError::Internal(anyhow::anyhow!(
            "INSERT returned no row"
        )))
    })
}

/// Records a successful login (`last_login_at`), emitting
/// [`USER_LOGGED_IN`].
///
/// # Errors
///
/// 503/500 on database failure.
pub fn record_login(conn: &Connection, id: Uuid) -> Result<(), ApiError> {
    let sql = "UPDATE users SET last_login_at = now() WHERE id = $1 RETURNING id::text";
    outbox::query(conn, &USER_LOGGED_IN, sql, &[ParameterValue::from(id)])
        .doing("recording a login")?;
    Ok(())
}

/// Looks a user up by id.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn find_by_id(conn: &Connection, id: Uuid) -> Result<Option<User>, ApiError> {
    let sql = Statement::new(format!("SELECT {} FROM users WHERE id = $1", columns()));
    let rows = conn
        .rows(&sql, &[ParameterValue::from(id)])
        .doing("loading a user")?;
    first_user(&rows)
}

/// The login identifier.
pub enum Login<'a> {
    /// By e-mail.
    Email(&'a Email),
    /// By username, case-insensitively.
    Username(&'a Username),
}

/// Loads a user and password hash for login.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn find_credentials(
    conn: &Connection,
    login: Login<'_>,
) -> Result<Option<Credentials>, ApiError> {
    let (condition, value) = match login {
        Login::Email(email) => ("email = $1", email.as_str()),
        Login::Username(name) => ("lower(username) = lower($1)", name.as_str()),
    };
    credentials_where(conn, condition, ParameterValue::Str(value.to_owned()))
}

/// Loads a user and password hash by id (for a password change).
///
/// # Errors
///
/// 503/500 on database failure.
pub fn find_credentials_by_id(
    conn: &Connection,
    id: Uuid,
) -> Result<Option<Credentials>, ApiError> {
    credentials_where(conn, "id = $1", ParameterValue::from(id))
}

/// The credentials of the user matching `condition` on `$1`.
fn credentials_where(
    conn: &Connection,
    condition: &str,
    value: ParameterValue,
) -> Result<Option<Credentials>, ApiError> {
    let sql = Statement::new(format!(
        "SELECT {}, password_hash, token_generation FROM users WHERE {condition}",
        columns()
    ));
    let Some(row) = conn.optional(&sql, &[value]).doing("loading credentials")? else {
        return Ok(None);
    };
    Ok(Some(Credentials {
        user: from_row(&row)?,
        password_hash: db::column(&row, COLUMNS, "password_hash")?,
        generation: generation(&row, COLUMNS + 1)?,
    }))
}

/// Sets a user's username and counts a revision, emitting
/// [`USER_UPDATED`] in the same statement.
///
/// # Errors
///
/// [`WriteError::UsernameTaken`] when another account has it.
pub fn update_username(
    conn: &Connection,
    id: Uuid,
    username: &Username,
) -> Result<Option<User>, WriteError> {
    let sql = format!(
        "UPDATE users SET username = $1, revision = revision + 1, updated_at = now() \
         WHERE id = $2 RETURNING {}, revision",
        columns()
    );
    let params = [
        ParameterValue::Str(username.as_str().to_owned()),
        ParameterValue::from(id),
    ];
    let rows = outbox::query(conn, &USER_UPDATED, &sql, &params)
        .map_err(|e| write_error(e, "updating a username"))?;
    Ok(first_user(&rows)?)
}
