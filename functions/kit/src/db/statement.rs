//! Row-returning statements that never yield an empty result set.
//!
//! Spin 4.0.0 to 4.0.2 hang forever in `spin:postgres/postgres.query` when
//! a statement returns zero rows (spinframework/spin#3671: the host waits
//! for a first row to learn the columns). A guest cannot time a host call
//! out, so "no such user" would hang the request. Every row-returning
//! statement of the functions is therefore built as a [`Statement`] and
//! run wrapped so that the host always sees at least one row:
//!
//! ```sql
//! WITH <ctes...>,
//!      __rows AS (<body>),
//!      __numbered AS (SELECT row_number() OVER () AS __ord, * FROM __rows)
//! SELECT __numbered.* FROM (VALUES (0)) AS __one (x)
//!   LEFT JOIN __numbered ON true
//! ORDER BY __numbered.__ord
//! ```
//!
//! The left join against a one-row `VALUES` yields the body's rows when
//! there are any and one all-`NULL` filler row when there are none; the
//! first column (`__ord`, never `NULL` on a real row) tells them apart, and
//! [`unwrap_rows`] strips it. `row_number()` numbers rows in the order the
//! body produced them and the final `ORDER BY` keeps that order across the
//! join. The body may be a `SELECT` or a data-modifying statement with
//! `RETURNING`: it becomes a top-level CTE, which Postgres runs exactly
//! once whether or not anything reads it. Postgres only allows
//! data-modifying CTEs at the top level, which is why a statement's own
//! CTEs are given separately ([`Statement::with`]) and joined into one
//! flat `WITH` list instead of being nested.

use spin_sdk::pg4::DbValue;

/// A row-returning statement: optional CTEs, then a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    ctes: Vec<String>,
    body: String,
    traced: bool,
}

/// Where a traced statement takes this invocation's `traceparent` (see
/// [`Statement::traced`]); replaced by the next free `$n` when it runs.
pub const TRACEPARENT_PARAM: &str = "$traceparent";

impl Statement {
    /// A statement whose result is `body`'s: a `SELECT`, or an
    /// `INSERT`/`UPDATE`/`DELETE` with `RETURNING`. `body` must not start
    /// with its own `WITH`; give those CTEs to [`Statement::with`].
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            ctes: Vec::new(),
            body: body.into(),
            traced: false,
        }
    }

    /// Marks the statement as reading [`TRACEPARENT_PARAM`]: run through
    /// [`crate::db::Connection::rows`], that becomes the parameter after
    /// the caller's, bound to [`crate::trace::traceparent`]. The SQL text
    /// stays the same from one request to the next, so the host's
    /// statement cache still serves it.
    #[must_use]
    pub fn traced(mut self) -> Self {
        self.traced = true;
        self
    }

    /// Whether the statement reads [`TRACEPARENT_PARAM`].
    pub fn is_traced(&self) -> bool {
        self.traced
    }

    /// Adds a CTE (`name AS (...)`) before the body; later CTEs and the body
    /// may refer to it. CTEs keep the order they are added in.
    #[must_use]
    pub fn with(mut self, cte: impl Into<String>) -> Self {
        self.ctes.push(cte.into());
        self
    }

    /// The SQL the host runs: the statement wrapped so that it yields at
    /// least one row (see the module docs).
    pub fn sql(&self) -> String {
        let mut sql = String::with_capacity(
            self.body.len() + self.ctes.iter().map(|c| c.len() + 2).sum::<usize>() + 220,
        );
        sql.push_str("WITH ");
        for cte in &self.ctes {
            sql.push_str(cte);
            sql.push_str(", ");
        }
        sql.push_str("__rows AS (");
        sql.push_str(&self.body);
        sql.push_str(
            "), __numbered AS (SELECT row_number() OVER () AS __ord, * FROM __rows) \
             SELECT __numbered.* FROM (VALUES (0)) AS __one (x) \
             LEFT JOIN __numbered ON true ORDER BY __numbered.__ord",
        );
        sql
    }
}

/// The statement's real rows from what the host returned for
/// [`Statement::sql`]: the filler row dropped, the marker column removed.
///
/// # Errors
///
/// When the result does not have the wrapper's shape (a statement not
/// built by [`Statement::sql`]).
pub fn unwrap_rows(rows: Vec<Vec<DbValue>>) -> Result<Vec<Vec<DbValue>>, String> {
    let mut out = Vec::with_capacity(rows.len());
    for mut row in rows {
        match row.first() {
            Some(DbValue::DbNull) => continue,
            Some(DbValue::Int64(_)) => {
                row.remove(0);
                out.push(row);
            }
            other => {
                return Err(format!(
                    "result row without the marker column (first value {other:?})"
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_body_becomes_the_rows_cte() {
        let sql = Statement::new("SELECT id FROM users WHERE id = $1").sql();
        assert!(
            sql.starts_with("WITH __rows AS (SELECT id FROM users WHERE id = $1), __numbered AS"),
            "{sql}"
        );
        assert!(
            sql.ends_with("LEFT JOIN __numbered ON true ORDER BY __numbered.__ord"),
            "{sql}"
        );
    }

    #[test]
    fn own_ctes_come_first_in_one_flat_with_list() {
        let sql = Statement::new("SELECT * FROM changed")
            .with("claim AS (SELECT 1)")
            .with("changed AS (INSERT INTO t VALUES (1) RETURNING id)")
            .sql();
        assert!(
            sql.starts_with(
                "WITH claim AS (SELECT 1), changed AS (INSERT INTO t VALUES (1) RETURNING id), \
                 __rows AS (SELECT * FROM changed)"
            ),
            "{sql}"
        );
        assert_eq!(sql.matches("WITH").count(), 1, "{sql}");
    }

    #[test]
    fn the_filler_row_is_dropped_and_the_marker_stripped() {
        let empty = vec![vec![DbValue::DbNull, DbValue::DbNull]];
        assert!(unwrap_rows(empty).unwrap().is_empty());

        let two = vec![
            vec![DbValue::Int64(1), DbValue::Str("a".into())],
            vec![DbValue::Int64(2), DbValue::DbNull],
        ];
        let rows = unwrap_rows(two).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(matches!(&rows[0][..], [DbValue::Str(s)] if s == "a"));
        assert!(matches!(&rows[1][..], [DbValue::DbNull]));
    }

    #[test]
    fn a_result_without_the_marker_is_an_error() {
        let err = unwrap_rows(vec![vec![DbValue::Str("x".into())]]).unwrap_err();
        assert!(err.contains("marker"), "{err}");
    }
}
