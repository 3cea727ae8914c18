//! Emitting events: the domain change and its outbox row in one statement.
//!
//! A function never inserts into `outbox` by itself and never runs a change
//! that should be announced without its event. It declares the event once,
//! as an [`EventSpec`] constant next to the code that changes the aggregate
//! (with the payload documented there), and runs the change through
//! [`query`]. That wraps the change in a data-modifying CTE:
//!
//! ```sql
//! WITH changed AS (<INSERT/UPDATE ... RETURNING ...>),
//!      event AS (INSERT INTO outbox (...) SELECT ... FROM changed)
//! SELECT * FROM changed
//! ```
//!
//! so an event row exists exactly when (and as many times as) the change
//! returned a row, in the same transaction, and the caller still gets the
//! change's `RETURNING` columns in their order. A change that touches no
//! row emits nothing. Like every row-returning statement, it is a
//! [`crate::db::Statement`], so it runs on Spin versions that cannot
//! return an empty result set.
//!
//! Each event is a CloudEvents 1.0 envelope: `id` is a fresh UUID v4 per row
//! (`gen_random_uuid()`, so multi-row changes work and the caller's `$n`
//! numbering is untouched), `source`/`type` come from the spec, `subject` is
//! the aggregate id read from the change's `RETURNING`, `time` is the
//! database's `now()`, and `data` is a JSON object built in SQL from the
//! returned columns that always carries `"version": <spec.version>`.

use crate::db::{Connection, Error, ParameterValue, Row, Statement, TRACEPARENT_PARAM};

/// Base of every event's `dataschema`: `<base><type>/v<version>`.
pub const DATASCHEMA_BASE: &str = "https://spinmesh.dev/schemas/events/";

/// One kind of event a function emits.
#[derive(Debug, Clone, Copy)]
pub struct EventSpec {
    /// CloudEvents `source`: the emitting function, e.g. `/auth`.
    pub source: &'static str,
    /// CloudEvents `type`, e.g. `user.registered`.
    pub kind: &'static str,
    /// Topic the relay publishes to, e.g. `users`.
    pub aggregate: &'static str,
    /// Column of the change's `RETURNING` holding the aggregate id; it
    /// becomes the CloudEvents `subject` (as text) and the broker key.
    pub subject: &'static str,
    /// Payload version, written as `data.version`.
    pub version: u32,
    /// The other payload fields: `(name, SQL expression)` where the
    /// expression reads the change's `RETURNING` columns (e.g.
    /// `("user_id", "changed.id")`).
    pub fields: &'static [(&'static str, &'static str)],
    /// Optional SQL condition over `changed`: emit only for rows matching it
    /// (e.g. `changed.status = 'sent'`).
    pub only_when: Option<&'static str>,
}

impl EventSpec {
    /// The event's `dataschema` URI.
    pub fn dataschema(&self) -> String {
        format!("{DATASCHEMA_BASE}{}/v{}", self.kind, self.version)
    }

    /// The SQL producing `data`: `jsonb_build_object('version', n, ...)`.
    fn data_sql(&self) -> String {
        let mut sql = format!("jsonb_build_object('version', {}", self.version);
        for (name, expr) in self.fields {
            sql.push_str(&format!(", {}, {expr}", literal(name)));
        }
        sql.push(')');
        sql
    }

    /// The full statement: `change` (an `INSERT`/`UPDATE`/`DELETE` with a
    /// `RETURNING` that includes [`EventSpec::subject`]) plus its outbox row.
    pub fn wrap(&self, change: &str) -> Statement {
        self.wrap_after(&[], change)
    }

    /// Like [`EventSpec::wrap`], with `prelude` CTEs (`name AS (...)`) placed
    /// first so `change` can refer to them, e.g. an idempotency claim
    /// ([`crate::idempotency::Claim::cte`]). Postgres only allows
    /// data-modifying CTEs at the top level, hence one flat `WITH` list.
    pub fn wrap_after(&self, prelude: &[&str], change: &str) -> Statement {
        wrap_each(&[self], prelude, change)
    }

    /// The `name AS (INSERT INTO outbox ...)` CTE emitting this event for
    /// each row of `changed` that matches [`EventSpec::only_when`].
    fn event_cte(&self, name: &str) -> String {
        let condition = self
            .only_when
            .map(|c| format!(" WHERE {c}"))
            .unwrap_or_default();
        format!(
            "{name} AS (INSERT INTO outbox \
             (id, source, type, subject, aggregate, dataschema, data, traceparent) \
             SELECT gen_random_uuid(), {source}, {kind}, changed.{subject}::text, {aggregate}, \
             {schema}, {data}, {TRACEPARENT_PARAM}::text FROM changed{condition})",
            source = literal(self.source),
            kind = literal(self.kind),
            subject = self.subject,
            aggregate = literal(self.aggregate),
            schema = literal(&self.dataschema()),
            data = self.data_sql(),
        )
    }
}

/// Like [`EventSpec::wrap_after`] for a change whose rows announce
/// different events: each of `specs` emits its event for the rows its
/// [`EventSpec::only_when`] selects (a batch of payments, say, some
/// succeeded and some failed), all in the one statement.
pub fn wrap_each(specs: &[&EventSpec], prelude: &[&str], change: &str) -> Statement {
    let statement = prelude
        .iter()
        .fold(Statement::new("SELECT * FROM changed"), |s, cte| {
            s.with(*cte)
        })
        .with(format!("changed AS ({change})"));
    specs
        .iter()
        .enumerate()
        .fold(statement, |s, (i, spec)| {
            let name = if i == 0 {
                "event".to_owned()
            } else {
                format!("event_{i}")
            };
            s.with(spec.event_cte(&name))
        })
        .traced()
}

/// Runs `change` with its event (see [`EventSpec::wrap`]); returns the
/// change's `RETURNING` rows.
///
/// # Errors
///
/// The classified database failure.
pub fn query(
    conn: &Connection,
    spec: &EventSpec,
    change: &str,
    params: &[ParameterValue],
) -> Result<Vec<Row>, Error> {
    conn.rows(&spec.wrap(change), params)
}

/// Runs `prelude` CTEs, then `change` with its event (see
/// [`EventSpec::wrap_after`]).
///
/// # Errors
///
/// As [`query`].
pub fn query_after(
    conn: &Connection,
    spec: &EventSpec,
    prelude: &[&str],
    change: &str,
    params: &[ParameterValue],
) -> Result<Vec<Row>, Error> {
    conn.rows(&spec.wrap_after(prelude, change), params)
}

/// A SQL string literal (the specs are constants, but quote safely anyway).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: EventSpec = EventSpec {
        source: "/auth",
        kind: "user.registered",
        aggregate: "users",
        subject: "id",
        version: 1,
        fields: &[("user_id", "changed.id"), ("email", "changed.email")],
        only_when: None,
    };

    #[test]
    fn the_change_and_its_event_are_one_statement() {
        let sql = SPEC
            .wrap("INSERT INTO users (email) VALUES ($1) RETURNING id, email")
            .sql();
        assert!(
            sql.starts_with("WITH changed AS (INSERT INTO users"),
            "{sql}"
        );
        assert!(sql.contains("INSERT INTO outbox"), "{sql}");
        assert!(sql.contains("'/auth', 'user.registered', changed.id::text, 'users'"));
        assert!(sql.contains(
            "jsonb_build_object('version', 1, 'user_id', changed.id, 'email', changed.email)"
        ));
        assert!(
            sql.contains("FROM changed), __rows AS (SELECT * FROM changed)"),
            "{sql}"
        );
    }

    #[test]
    fn prelude_ctes_come_first_and_conditions_filter_the_event() {
        let spec = EventSpec {
            only_when: Some("changed.status = 'sent'"),
            ..SPEC
        };
        let sql = spec
            .wrap_after(&["claim AS (SELECT 1)"], "DELETE FROM t RETURNING id")
            .sql();
        assert!(sql.starts_with("WITH claim AS (SELECT 1), changed AS (DELETE"));
        assert!(sql.contains("FROM changed WHERE changed.status = 'sent')"));
    }

    #[test]
    fn each_spec_emits_for_the_rows_it_selects() {
        let paid = EventSpec {
            kind: "order.paid",
            only_when: Some("changed.status = 'paid'"),
            ..SPEC
        };
        let failed = EventSpec {
            kind: "order.failed",
            only_when: Some("changed.status = 'failed'"),
            ..SPEC
        };
        let sql = wrap_each(
            &[&paid, &failed],
            &[],
            "UPDATE t SET x = 1 RETURNING id, status",
        )
        .sql();
        assert!(sql.contains("event AS (INSERT INTO outbox"), "{sql}");
        assert!(sql.contains("event_1 AS (INSERT INTO outbox"), "{sql}");
        assert!(sql.contains("'order.paid', changed.id::text"), "{sql}");
        assert!(
            sql.contains("FROM changed WHERE changed.status = 'failed')"),
            "{sql}"
        );
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(
            SPEC.dataschema(),
            "https://spinmesh.dev/schemas/events/user.registered/v1"
        );
    }
}
