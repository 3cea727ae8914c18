//! Postgres through Spin's `spin:postgres/postgres@4.0.0`, in a form that
//! behaves the same on every released Spin.
//!
//! Two host behaviours shape this module:
//!
//! - Spin 4.0.0–4.0.2 never return from `query` when the statement yields
//!   no rows. So [`Connection`] has no raw `query`: every row-returning
//!   statement is a [`Statement`], run wrapped so the host always sees at
//!   least one row ([`statement`]), and comes back as plain rows.
//! - Errors raised while rows stream back reach the guest as text, in a
//!   shape that depends on the Spin version. [`Error`] classifies every
//!   form once ([`error`]), so handlers match on an [`ErrorKind`], never on
//!   strings.
//!
//! Connections are opened per request (the host pools them).

mod error;
mod statement;

use anyhow::anyhow;
use spin_sdk::pg4;

pub use error::{
    DEADLOCK_DETECTED, Error, ErrorKind, MIXED_CURRENCIES, NO_SUCH_PRODUCT, OUT_OF_STOCK, REFUSALS,
    SERIALIZATION_FAILURE, UNIQUE_VIOLATION, classify_text,
};
pub use spin_sdk::pg4::{DbValue, Decode, ParameterValue};
pub use statement::{Statement, TRACEPARENT_PARAM, unwrap_rows};

use crate::config;
use crate::problem::ApiError;

/// One result row: the statement's columns in order.
pub type Row = Vec<DbValue>;

/// A connection to the database named by the `database_url` variable.
pub struct Connection {
    inner: pg4::Connection,
}

/// Opens a connection to the URL in the `database_url` variable.
///
/// # Errors
///
/// 500 when the variable is missing, 503 when Postgres is unreachable.
pub fn connect() -> Result<Connection, ApiError> {
    let url = config::get(config::DATABASE_URL)?;
    let inner = pg4::Connection::open(&url)
        .map_err(|e| Error::from_pg(&e).doing("connecting to postgres"))?;
    Ok(Connection { inner })
}

impl Connection {
    /// Every row `statement` yields, in order (possibly none).
    ///
    /// # Errors
    ///
    /// The classified failure.
    pub fn rows(
        &self,
        statement: &Statement,
        params: &[ParameterValue],
    ) -> Result<Vec<Row>, Error> {
        let sql = statement.sql();
        let set = if statement.is_traced() {
            let sql = sql.replace(TRACEPARENT_PARAM, &format!("${}", params.len() + 1));
            let mut params = params.to_vec();
            params.push(ParameterValue::Str(crate::trace::traceparent()));
            self.inner.query(&sql, &params)
        } else {
            self.inner.query(&sql, params)
        }
        .map_err(|e| Error::from_pg(&e))?;
        unwrap_rows(set.rows).map_err(|e| Error::new(ErrorKind::Other, e))
    }

    /// The first row `statement` yields, if any.
    ///
    /// # Errors
    ///
    /// The classified failure.
    pub fn optional(
        &self,
        statement: &Statement,
        params: &[ParameterValue],
    ) -> Result<Option<Row>, Error> {
        Ok(self.rows(statement, params)?.into_iter().next())
    }

    /// The first row `statement` yields, which must exist (an `INSERT ...
    /// RETURNING`, an aggregate).
    ///
    /// # Errors
    ///
    /// The classified failure, or [`ErrorKind::Other`] when there is no row.
    pub fn one(&self, statement: &Statement, params: &[ParameterValue]) -> Result<Row, Error> {
        self.optional(statement, params)?
            .ok_or_else(|| Error::new(ErrorKind::Other, "the statement returned no row"))
    }

    /// Runs a statement for its effect; returns the number of rows it
    /// changed. `execute` returns no rows, so it is safe on every Spin.
    ///
    /// # Errors
    ///
    /// The classified failure.
    pub fn execute(&self, sql: &str, params: &[ParameterValue]) -> Result<u64, Error> {
        self.inner
            .execute(sql, params)
            .map_err(|e| Error::from_pg(&e))
    }
}

/// Adds what was being done to a database failure.
pub trait Doing<T> {
    /// Names the operation (`"loading a user"`) for the log.
    ///
    /// # Errors
    ///
    /// The same failure, with its context.
    fn doing(self, context: &str) -> Result<T, Error>;
}

impl<T> Doing<T> for Result<T, Error> {
    fn doing(self, context: &str) -> Result<T, Error> {
        self.map_err(|e| e.doing(context))
    }
}

impl From<Error> for ApiError {
    /// The generic answer: 409 for a unique violation (handlers that can
    /// say which field conflicts match on [`Error::unique_violation`]
    /// first), 503 for an unreachable database or a transient conflict
    /// (the client, or the bridge for a delivery, tries again), else 500.
    fn from(err: Error) -> Self {
        match err.kind() {
            ErrorKind::UniqueViolation { .. } => {
                eprintln!("conflict: {err}");
                ApiError::Conflict("the change conflicts with an existing record".to_owned())
            }
            ErrorKind::Refused { .. } => {
                eprintln!("refused: {err}");
                ApiError::Conflict("the change was refused by the current state".to_owned())
            }
            ErrorKind::Retryable | ErrorKind::Unavailable => ApiError::unavailable("postgres", err),
            ErrorKind::Other => ApiError::Internal(anyhow!(err)),
        }
    }
}

/// Decodes column `index` of `row`, naming the column on failure.
///
/// # Errors
///
/// When the column is absent or has an unexpected type (a bug in the query).
pub fn column<T: Decode>(row: &[DbValue], index: usize, name: &str) -> anyhow::Result<T> {
    let value = row
        .get(index)
        .ok_or_else(|| anyhow!("column {name} (#{index}) missing from the result"))?;
    T::decode(value).map_err(|e: pg4::Error| anyhow!("column {name}: {e}"))
}

/// A text parameter. Statements cast it to the column's type
/// (`$n::text::uuid`, `$n::text::numeric`), so UUIDs, exact decimals and
/// timestamps cross every host alike, as text.
pub fn text(value: impl ToString) -> ParameterValue {
    ParameterValue::Str(value.to_string())
}

/// [`text`], or SQL `NULL` for `None`.
pub fn text_or_null<T: ToString>(value: Option<T>) -> ParameterValue {
    value.map_or(ParameterValue::DbNull, text)
}

/// Decodes every row with `decode`; a row that does not decode is a bug
/// in the statement (500).
///
/// # Errors
///
/// 500 naming what did not decode.
pub fn decode_all<T>(
    rows: &[Row],
    decode: impl Fn(&[DbValue]) -> anyhow::Result<T>,
) -> Result<Vec<T>, ApiError> {
    rows.iter()
        .map(|row| decode(row))
        .collect::<anyhow::Result<_>>()
        .map_err(ApiError::Internal)
}

/// Decodes the first row, if any, with `decode`.
///
/// # Errors
///
/// As [`decode_all`].
pub fn decode_first<T>(
    rows: &[Row],
    decode: impl Fn(&[DbValue]) -> anyhow::Result<T>,
) -> Result<Option<T>, ApiError> {
    rows.first()
        .map(|row| decode(row))
        .transpose()
        .map_err(ApiError::Internal)
}

/// SQL rendering a `timestamptz` column as RFC 3339 UTC text, e.g.
/// `2024-05-01T12:00:00.000000Z`: text crosses every host identically.
#[macro_export]
macro_rules! rfc3339 {
    ($column:literal) => {
        concat!(
            "to_char(",
            $column,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_renders_the_column() {
        assert_eq!(
            rfc3339!("u.created_at"),
            "to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        );
    }

    #[test]
    fn failures_map_to_statuses() {
        let status = |kind: ErrorKind| ApiError::from(Error::new(kind, "x")).status();
        assert_eq!(status(ErrorKind::UniqueViolation { constraint: None }), 409);
        assert_eq!(status(ErrorKind::Retryable), 503);
        assert_eq!(status(ErrorKind::Unavailable), 503);
        assert_eq!(status(ErrorKind::Other), 500);
    }
}
