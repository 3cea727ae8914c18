//! What a database failure means for the caller, whatever form the host
//! reported it in.
//!
//! Spin reports a Postgres error in one of two forms. An error raised
//! before any row is read (a syntax error, a bad parameter) arrives
//! structured, as `QueryError::DbError` with its SQLSTATE `code` and
//! `extras` such as `constraint`. An error raised while rows are streamed
//! back (a unique violation from `INSERT ... RETURNING`, a serialization
//! failure) arrives as `QueryError::Text`, holding only the host's debug
//! text of the error. That text differs by Spin version:
//!
//! - Spin 4.0.x: the debug form of the structured error, e.g.
//!   `Error::QueryFailed(QueryError::DbError(DbError { as-text: "...",
//!   severity: "ERROR", code: "23505", message: "duplicate key value
//!   violates unique constraint \"users_email_key\"", detail: Some(...),
//!   extras: [("constraint", "users_email_key"), ...] }))`;
//! - Spin 3.x: the error chain as text, `db error: ERROR: duplicate key
//!   value violates unique constraint "users_email_key"\nDETAIL: ...\n\n
//!   Caused by: ...`, with no SQLSTATE at all.
//!
//! [`Error::from_pg`] reads all three: the structured fields, else the
//! `code:`/`constraint` fields in the text, else Postgres's (English)
//! message for the few conditions a handler acts on.

use spin_sdk::pg4::{PgError, QueryError};

/// SQLSTATE of a unique constraint violation.
pub const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE of a serialization failure (a retry may succeed).
pub const SERIALIZATION_FAILURE: &str = "40001";
/// SQLSTATE of a detected deadlock (a retry may succeed).
pub const DEADLOCK_DETECTED: &str = "40P01";

/// What kind of failure it was: what a handler decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// A unique constraint rejected the change; `constraint` names it when
    /// the host said which.
    UniqueViolation {
        /// The constraint or unique index, e.g. `users_email_key`.
        constraint: Option<String>,
    },
    /// A serialization failure or deadlock: the same request may succeed
    /// if tried again.
    Retryable,
    /// The database cannot be reached or cannot serve now (connection
    /// failures, shutdown, too many connections).
    Unavailable,
    /// The statement refused the change on purpose with one of
    /// spinmesh's own conditions (SQLSTATE class `SM`, raised by the SQL
    /// functions the migrations define, e.g. `SMOOS` out of stock), with
    /// the `DETAIL` it gave (the product id, say).
    Refused {
        /// The SQLSTATE, e.g. `SMOOS`.
        code: String,
        /// The raised `DETAIL`, when the host passed it on.
        detail: Option<String>,
    },
    /// Anything else: a bug in a statement or an unexpected state.
    Other,
}

/// spinmesh's own SQLSTATEs and the messages the migrations raise them
/// with; Spin 3.x passes only the message text, so the message identifies
/// the condition there.
pub const REFUSALS: &[(&str, &str)] = &[
    (OUT_OF_STOCK, "out of stock"),
    (NO_SUCH_PRODUCT, "no such product"),
    (MIXED_CURRENCIES, "mixed currencies"),
];

/// Raised by `reserve_stock` when a product has too little stock.
pub const OUT_OF_STOCK: &str = "SMOOS";
/// Raised by `reserve_stock` for an unknown or archived product.
pub const NO_SUCH_PRODUCT: &str = "SMNOP";
/// Raised when one order names products priced in different currencies.
pub const MIXED_CURRENCIES: &str = "SMMIX";

/// A classified database failure, with what was being done.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{context}: {detail}")]
pub struct Error {
    kind: ErrorKind,
    context: String,
    detail: String,
}

impl Error {
    /// An error of `kind`; `detail` is for the log only.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            context: "database".to_owned(),
            detail: detail.into(),
        }
    }

    /// Classifies an error the host returned.
    pub fn from_pg(err: &PgError) -> Self {
        let detail = format!("{err:?}");
        let kind = match err {
            PgError::ConnectionFailed(_) => ErrorKind::Unavailable,
            PgError::QueryFailed(QueryError::DbError(db)) => {
                let constraint = db
                    .extras
                    .iter()
                    .find(|(name, _)| name == "constraint")
                    .map(|(_, value)| value.clone());
                if db.code.starts_with("SM") {
                    ErrorKind::Refused {
                        code: db.code.clone(),
                        detail: db.detail.clone(),
                    }
                } else {
                    kind_of(&db.code, constraint)
                }
            }
            PgError::QueryFailed(QueryError::Text(text)) => classify_text(text),
            _ => ErrorKind::Other,
        };
        Self::new(kind, detail)
    }

    /// Says what was being done, for the log (`"loading a user"`).
    #[must_use]
    pub fn doing(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }

    /// What kind of failure it was.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The condition's code and detail, if the statement refused the
    /// change on purpose ([`ErrorKind::Refused`]).
    pub fn refusal(&self) -> Option<(&str, Option<&str>)> {
        match &self.kind {
            ErrorKind::Refused { code, detail } => Some((code.as_str(), detail.as_deref())),
            _ => None,
        }
    }

    /// The violated constraint, if this is a unique violation.
    pub fn unique_violation(&self) -> Option<Option<&str>> {
        match &self.kind {
            ErrorKind::UniqueViolation { constraint } => Some(constraint.as_deref()),
            _ => None,
        }
    }
}

/// The kind a SQLSTATE stands for.
fn kind_of(code: &str, constraint: Option<String>) -> ErrorKind {
    match code {
        UNIQUE_VIOLATION => ErrorKind::UniqueViolation { constraint },
        SERIALIZATION_FAILURE | DEADLOCK_DETECTED => ErrorKind::Retryable,
        c if is_unavailable_code(c) => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    }
}

/// SQLSTATEs meaning "the server cannot serve you right now": connection
/// exceptions (class 08), admin/crash shutdown, cannot connect now, too
/// many connections.
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// Classifies the text form of an error (see the module docs).
pub fn classify_text(text: &str) -> ErrorKind {
    let constraint = quoted_after(text, "(\"constraint\", \"")
        .or_else(|| quoted_after(text, "constraint: Some(\\\""))
        .or_else(|| quoted_after(text, "constraint: Some(\""))
        .or_else(|| quoted_after(text, "violates unique constraint \\\""))
        .or_else(|| quoted_after(text, "violates unique constraint \""));
    if let Some(code) = field_after(text, "code: \"", 5) {
        if code.starts_with("SM") {
            let detail = quoted_after(text, "detail: Some(\"");
            return ErrorKind::Refused {
                code: code.to_owned(),
                detail,
            };
        }
        return kind_of(code, constraint);
    }
    // Spin 3.x: `db error: ERROR: out of stock\nDETAIL: <detail>`.
    for (code, message) in REFUSALS {
        if text.contains(&format!("ERROR: {message}")) {
            let detail = text
                .split_once("DETAIL: ")
                .map(|(_, rest)| rest.lines().next().unwrap_or_default().trim().to_owned())
                .filter(|d| !d.is_empty());
            return ErrorKind::Refused {
                code: (*code).to_owned(),
                detail,
            };
        }
    }
    if let Some(code) = field_after(text, "SqlState(E", 5) {
        return kind_of(code, constraint);
    }
    // No SQLSTATE in the text (Spin 3.x): Postgres's own messages.
    if text.contains("duplicate key value violates unique constraint") {
        ErrorKind::UniqueViolation { constraint }
    } else if text.contains("could not serialize access") || text.contains("deadlock detected") {
        ErrorKind::Retryable
    } else if [
        "connection closed",
        "error communicating with the server",
        "error connecting to server",
        "timeout waiting for server",
        "the database system is shutting down",
        "terminating connection due to administrator command",
    ]
    .iter()
    .any(|m| text.contains(m))
    {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Other
    }
}

/// The `len` characters after `marker`, if they are all alphanumeric.
fn field_after<'a>(text: &'a str, marker: &str, len: usize) -> Option<&'a str> {
    let start = text.find(marker)? + marker.len();
    let field = text.get(start..start + len)?;
    field
        .chars()
        .all(|c| c.is_ascii_alphanumeric())
        .then_some(field)
}

/// The name after `marker` up to the next quote (plain or escaped).
fn quoted_after(text: &str, marker: &str) -> Option<String> {
    let start = text.find(marker)? + marker.len();
    let rest = &text[start..];
    let end = rest.find(['"', '\\'])?;
    (end > 0).then(|| rest[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use spin_sdk::pg4::DbError;

    use super::*;

    /// What Spin 4.0.2 hands the guest for a unique violation raised while
    /// rows stream back (`INSERT ... RETURNING`): the host's `{:?}` of its
    /// structured error, wrapped in `QueryError::Text`, followed by
    /// anyhow's backtrace. Copied from a registration under `spin up`
    /// (backtrace cut after its first frame).
    const SPIN_4_TEXT: &str = r#"Error::QueryFailed(QueryError::DbError(DbError { as-text: "Error { kind: Db, cause: Some(DbError { severity: \"ERROR\", parsed_severity: Some(Error), code: SqlState(E23505), message: \"duplicate key value violates unique constraint \\\"users_email_key\\\"\", detail: Some(\"Key (email)=(ada@example.com) already exists.\"), hint: None, position: None, where_: None, schema: Some(\"public\"), table: Some(\"users\"), column: None, datatype: None, constraint: Some(\"users_email_key\"), file: Some(\"nbtinsert.c\"), line: Some(664), routine: Some(\"_bt_check_unique\") }) }", severity: "ERROR", code: "23505", message: "duplicate key value violates unique constraint \"users_email_key\"", detail: Some("Key (email)=(ada@example.com) already exists."), extras: [("constraint", "users_email_key"), ("routine", "_bt_check_unique"), ("table", "users"), ("schema", "public"), ("file", "nbtinsert.c"), ("line", "664")] }))

Stack backtrace:
   0: anyhow::error::<impl core::convert::From<E> for anyhow::Error>::from"#;

    /// What Spin 3.6.3 hands the guest for the same failure: anyhow's debug
    /// text of the client error (its chain and backtrace), which carries no
    /// SQLSTATE. The shape copied from a duplicate registration under `spin
    /// up` (here for the username index; backtrace cut after its first
    /// frame).
    const SPIN_3_TEXT: &str = "db error: ERROR: duplicate key value violates unique constraint \"users_username_lower_key\"\nDETAIL: Key (lower(username))=(ada) already exists.\n\nCaused by:\n    ERROR: duplicate key value violates unique constraint \"users_username_lower_key\"\n    DETAIL: Key (lower(username))=(ada) already exists.\n\nStack backtrace:\n   0: anyhow::error::<impl core::convert::From<E> for anyhow::Error>::from";

    fn text(t: &str) -> PgError {
        PgError::QueryFailed(QueryError::Text(t.to_owned()))
    }

    #[test]
    fn spin_4_text_unique_violation_is_a_409_naming_its_constraint() {
        let err = Error::from_pg(&text(SPIN_4_TEXT));
        assert_eq!(err.unique_violation(), Some(Some("users_email_key")));
        assert_eq!(crate::ApiError::from(err).status(), 409);
    }

    #[test]
    fn spin_3_text_unique_violation_is_a_409_naming_its_constraint() {
        let err = Error::from_pg(&text(SPIN_3_TEXT));
        assert_eq!(
            err.unique_violation(),
            Some(Some("users_username_lower_key"))
        );
        assert_eq!(crate::ApiError::from(err).status(), 409);
    }

    #[test]
    fn structured_errors_use_code_and_extras() {
        let structured = PgError::QueryFailed(QueryError::DbError(DbError {
            as_text: String::new(),
            severity: "ERROR".into(),
            code: "23505".into(),
            message: "duplicate key value violates unique constraint \"users_email_key\"".into(),
            detail: None,
            extras: vec![("constraint".into(), "users_email_key".into())],
        }));
        assert_eq!(
            Error::from_pg(&structured).unique_violation(),
            Some(Some("users_email_key"))
        );
    }

    #[test]
    fn every_form_is_classified_alike() {
        let cases: &[(&str, PgError, ErrorKind)] = &[
            (
                "4.0 text, serialization failure",
                text(
                    "Error::QueryFailed(QueryError::DbError(DbError { as-text: \"x\", severity: \"ERROR\", code: \"40001\", message: \"could not serialize access due to concurrent update\", detail: None, extras: [] }))",
                ),
                ErrorKind::Retryable,
            ),
            (
                "3.x text, deadlock",
                text(
                    "db error: ERROR: deadlock detected\n\nCaused by:\n    ERROR: deadlock detected",
                ),
                ErrorKind::Retryable,
            ),
            (
                "text, shutdown code",
                text("... code: SqlState(E57P01) ..."),
                ErrorKind::Unavailable,
            ),
            (
                "text, connection closed",
                text("connection closed"),
                ErrorKind::Unavailable,
            ),
            (
                "connection failed",
                PgError::ConnectionFailed("refused".into()),
                ErrorKind::Unavailable,
            ),
            (
                "text, syntax error",
                text(
                    "Error::QueryFailed(QueryError::DbError(DbError { as-text: \"x\", severity: \"ERROR\", code: \"42601\", message: \"syntax error\", detail: None, extras: [] }))",
                ),
                ErrorKind::Other,
            ),
            (
                "bad parameter",
                PgError::BadParameter("x".into()),
                ErrorKind::Other,
            ),
        ];
        for (name, err, want) in cases {
            assert_eq!(Error::from_pg(err).kind(), want, "{name}");
        }
    }

    #[test]
    fn connection_trouble_codes_are_unavailable() {
        for code in ["08006", "08001", "57P01", "53300"] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
    }

    #[test]
    fn refusals_keep_their_code_and_detail_in_every_form() {
        let id = "7d2c5f7e-0000-4000-8000-000000000001";
        let expected = ErrorKind::Refused {
            code: OUT_OF_STOCK.to_owned(),
            detail: Some(id.to_owned()),
        };
        let spin_4 = format!(
            "Error::QueryFailed(QueryError::DbError(DbError {{ as-text: \"db error: ERROR: out of stock\\nDETAIL: {id}\", severity: \"ERROR\", code: \"SMOOS\", message: \"out of stock\", detail: Some(\"{id}\"), extras: [] }}))"
        );
        let spin_3 = format!(
            "db error: ERROR: out of stock\nDETAIL: {id}\n\nCaused by:\n    ERROR: out of stock"
        );
        assert_eq!(classify_text(&spin_4), expected);
        assert_eq!(classify_text(&spin_3), expected);
        let structured = PgError::QueryFailed(QueryError::DbError(DbError {
            as_text: String::new(),
            severity: "ERROR".into(),
            code: NO_SUCH_PRODUCT.into(),
            message: "no such product".into(),
            detail: Some(id.into()),
            extras: vec![],
        }));
        let err = Error::from_pg(&structured);
        assert_eq!(err.refusal(), Some((NO_SUCH_PRODUCT, Some(id))));
        assert_eq!(
            classify_text("db error: ERROR: no such product"),
            ErrorKind::Refused {
                code: NO_SUCH_PRODUCT.to_owned(),
                detail: None,
            }
        );
    }
}
