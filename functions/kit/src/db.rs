//! Postgres through Spin's `spin:postgres/postgres@4.0.0`.
//!
//! Connections are opened per request (the host pools them); failures are
//! classified once here: an unreachable server is a 503, a constraint
//! violation is for the handler to interpret, anything else is a 500.

use anyhow::anyhow;
use spin_sdk::pg4::{self, QueryError};

pub use spin_sdk::pg4::{Connection, DbError, DbValue, Decode, ParameterValue, PgError, RowSet};

use crate::config;
use crate::problem::ApiError;

/// SQLSTATE of a unique constraint violation.
pub const UNIQUE_VIOLATION: &str = "23505";

/// Opens a connection to the URL in the `database_url` variable.
///
/// # Errors
///
/// 500 when the variable is missing, 503 when Postgres is unreachable.
pub fn connect() -> Result<Connection, ApiError> {
    let url = config::get(config::DATABASE_URL)?;
    Connection::open(&url).map_err(|e| classify(e, "connecting to postgres"))
}

/// Turns a Postgres error into the response it deserves; `context` says
/// what was being done, for the log.
pub fn classify(err: PgError, context: &str) -> ApiError {
    let unavailable = match &err {
        PgError::ConnectionFailed(_) => true,
        PgError::QueryFailed(QueryError::DbError(db)) => is_unavailable_code(&db.code),
        _ => false,
    };
    if unavailable {
        ApiError::unavailable("postgres", anyhow!("{context}: {err:?}"))
    } else {
        ApiError::Internal(anyhow!("{context}: {err:?}"))
    }
}

/// SQLSTATEs meaning "the server cannot serve you right now": connection
/// exceptions (class 08), shutdown in progress, too many connections.
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// The database error if `err` is a unique violation, so a handler can tell
/// which constraint fired (from `message`/`detail`) and answer 409.
pub fn unique_violation(err: &PgError) -> Option<&DbError> {
    match err {
        PgError::QueryFailed(QueryError::DbError(db)) if db.code == UNIQUE_VIOLATION => Some(db),
        _ => None,
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
    fn connection_trouble_is_unavailable() {
        for code in ["08006", "08001", "57P01", "53300"] {
            assert!(is_unavailable_code(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
    }

    #[test]
    fn rfc3339_renders_the_column() {
        assert_eq!(
            rfc3339!("u.created_at"),
            "to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        );
    }
}
