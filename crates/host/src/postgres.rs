//! `spin:postgres/postgres@4.0.0` over the host's pooled connections.
//!
//! Parameters are typed by their variant, as in Spin: a `str` parameter
//! binds only to text-like columns, so a guest that works here works under
//! `spin up`. Result columns are converted by their Postgres type; anything
//! unknown comes back as `unsupported` with its raw bytes.

// The WIT `error` variant is large, and it is the return type the
// interface dictates; boxing it would only add a conversion back.
#![allow(clippy::result_large_err)]

use std::error::Error as StdError;

use futures::StreamExt;

use bytes::BytesMut;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use rust_decimal::Decimal;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tracing::instrument;
use wasmtime::component::Resource;

use super::InstanceState;
use super::bindings::spin::postgres::postgres::{
    self as pg, Column, DbDataType, DbError, DbValue, Error, ParameterValue, QueryError, RowSet,
};
use spinmesh_config::redact::redact;

/// How faithfully the host reproduces the released Spin's Postgres quirks.
///
/// Spin 4.0.0–4.0.2 hang forever in `query` when a statement yields no
/// rows (spinframework/spin#3671), and every released Spin reports an
/// error raised while rows stream back (a unique violation from `INSERT
/// ... RETURNING`) as `query-error::text` holding the debug text of the
/// error instead of the structured `db-error`. A function that passes its
/// tests here must not hang or misread errors there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PgCompat {
    /// Fail loudly where Spin 4.0.x would misbehave: a `query` yielding
    /// zero rows traps (the client gets a 500, the log names the
    /// statement), and streaming errors arrive in the text form Spin 4.0.x
    /// sends. What the test suite runs with.
    Strict,
    /// Behave like a fixed Spin: empty results are returned (with a
    /// warning in the log) and errors stay structured.
    #[default]
    Lenient,
}

impl PgCompat {
    /// The error a guest sees for a failure raised while rows streamed.
    fn streaming_error(self, err: Error) -> Error {
        match self {
            // Spin 4.0.x: `QueryError::Text(format!("{e:?}"))` of an anyhow
            // error wrapping its structured error, whose Display is its
            // Debug (wasmtime's bindgen).
            Self::Strict => Error::QueryFailed(QueryError::Text(format!("{err:?}"))),
            Self::Lenient => err,
        }
    }

    /// What happens when `statement` yielded no rows.
    ///
    /// # Errors
    /// In strict mode, the trap that ends the instance.
    fn no_rows(self, component: &str, statement: &str) -> wasmtime::Result<()> {
        match self {
            Self::Strict => Err(wasmtime::Error::msg(format!(
                "strict Spin compatibility: component {component} ran a `query` that returned \
                 no rows, which never returns on Spin 4.0.0-4.0.2 (spinframework/spin#3671): \
                 {statement:?}; make the statement always yield a row (kit::db::Statement)"
            ))),
            Self::Lenient => {
                tracing::warn!(
                    component,
                    statement,
                    "a Postgres query returned no rows; on Spin 4.0.0-4.0.2 this request would hang"
                );
                Ok(())
            }
        }
    }
}

/// A guest's open connection: a client checked out of the pool for the
/// instance's lifetime, returned when the guest drops the resource.
pub struct PgConnection {
    client: deadpool_postgres::Object,
    /// Whether this connection's outbox writes are the host's to announce
    /// (see [`super::outbox_writes`]).
    announces: bool,
}

impl PgConnection {
    /// After a statement succeeded: when it may have written the outbox
    /// and such writes are the host's to announce, waits until its commit
    /// is done (an empty query queued behind it returns only then; the
    /// row stream ends before the commit) and rings.
    async fn announce_write(&self, services: &super::Services, statement: &str) {
        if self.announces && super::outbox_writes::may_write_outbox(statement) {
            let _ = self.client.simple_query("").await;
            services.outbox.written();
        }
    }
}

impl pg::Host for InstanceState {}

impl pg::HostConnection for InstanceState {
    #[instrument(level = "debug", skip_all, fields(component = %self.component.id))]
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<PgConnection>, Error>> {
        if let Err(err) = self.component.outbound.check_url(&address) {
            return Ok(Err(Error::ConnectionFailed(err.to_string())));
        }
        let cap = self.services.pg_instance_cap();
        if self.pg_open >= cap {
            // Each open connection holds a pooled client until the guest
            // drops it; past the cap, fail at once rather than wait for a
            // client other requests need.
            return Ok(Err(Error::ConnectionFailed(format!(
                "this instance already holds {cap} open Postgres connections (the limit, \
                 --pg-connections-per-instance); drop one or reuse it"
            ))));
        }
        match self.services.pg_client(&address).await {
            Ok(client) => {
                let announces = self.services.outbox.announced(&address);
                let conn = self.table.push(PgConnection { client, announces })?;
                self.pg_open += 1;
                Ok(Ok(conn))
            }
            Err(err) => Ok(Err(Error::ConnectionFailed(format!(
                "{}: {err:#}",
                redact(&address)
            )))),
        }
    }

    #[instrument(level = "debug", skip_all, fields(component = %self.component.id))]
    async fn query(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        let compat = self.services.config.pg_compat;
        let conn = self.table.get(&conn)?;
        let (stmt, params) = match prepare(conn, &statement, params).await {
            Ok(prepared) => prepared,
            Err(e) => return Ok(Err(e)),
        };
        // Errors until the server has bound the statement come back
        // structured, as in Spin; errors while rows stream back are the
        // ones Spin reports as text.
        let stream = match conn.client.query_raw(&stmt, params.iter()).await {
            Ok(stream) => stream,
            Err(e) => return Ok(Err(query_failed(&e))),
        };
        futures::pin_mut!(stream);
        let mut out = Vec::new();
        let mut buffered = 0usize;
        while let Some(row) = stream.next().await {
            let row = match row {
                Ok(row) => row,
                Err(e) => return Ok(Err(compat.streaming_error(query_failed(&e)))),
            };
            let mut values = Vec::with_capacity(row.len());
            for (i, col) in row.columns().iter().enumerate() {
                match db_value(&row, i, col.type_()) {
                    Ok(v) => values.push(v),
                    Err(e) => {
                        return Ok(Err(Error::ValueConversionFailed(format!(
                            "column {}: {e}",
                            col.name()
                        ))));
                    }
                }
            }
            buffered += row_size(&values);
            if buffered > MAX_BUFFERED_BYTES {
                return Ok(Err(Error::QueryFailed(QueryError::Text(format!(
                    "query result exceeds limit of {MAX_BUFFERED_BYTES} bytes"
                )))));
            }
            out.push(values);
        }
        conn.announce_write(&self.services, &statement).await;
        if out.is_empty() {
            compat.no_rows(&self.component.id, &statement)?;
        }
        let columns = stmt
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_string(),
                data_type: data_type(c.type_()),
            })
            .collect();
        Ok(Ok(RowSet { columns, rows: out }))
    }

    #[instrument(level = "debug", skip_all, fields(component = %self.component.id))]
    async fn execute(
        &mut self,
        conn: Resource<PgConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let conn = self.table.get(&conn)?;
        let (stmt, params) = match prepare(conn, &statement, params).await {
            Ok(prepared) => prepared,
            Err(e) => return Ok(Err(e)),
        };
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let result = conn.client.execute(&stmt, &refs).await;
        if result.is_ok() {
            conn.announce_write(&self.services, &statement).await;
        }
        Ok(result.map_err(|e| query_failed(&e)))
    }

    async fn drop(&mut self, conn: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        self.pg_open = self.pg_open.saturating_sub(1);
        Ok(())
    }
}

/// Converts the parameters and prepares the statement through the
/// connection's statement cache, so a guest repeating a query each request
/// pays for parsing and planning once per pooled connection.
async fn prepare(
    conn: &PgConnection,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<(tokio_postgres::Statement, Vec<Param>), Error> {
    let params = params
        .into_iter()
        .map(Param::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let stmt = conn
        .client
        .prepare_cached(statement)
        .await
        .map_err(|e| query_failed(&e))?;
    Ok((stmt, params))
}

/// The most result bytes the host buffers for one query, as in Spin
/// (`MAX_HOST_BUFFERED_BYTES`): a runaway `SELECT` fails instead of
/// growing the host's memory outside the instance's limits.
const MAX_BUFFERED_BYTES: usize = 128 << 20;

/// Roughly what a converted row occupies.
fn row_size(values: &[DbValue]) -> usize {
    values
        .iter()
        .map(|v| {
            std::mem::size_of::<DbValue>()
                + match v {
                    DbValue::Str(s) | DbValue::Decimal(s) | DbValue::Uuid(s) => s.len(),
                    DbValue::Binary(b) | DbValue::Jsonb(b) | DbValue::Unsupported(b) => b.len(),
                    DbValue::ArrayStr(a) => {
                        a.iter().map(|s| s.as_ref().map_or(0, String::len)).sum()
                    }
                    DbValue::ArrayDecimal(a) => {
                        a.iter().map(|s| s.as_ref().map_or(0, String::len)).sum()
                    }
                    DbValue::ArrayInt32(a) => a.len() * 8,
                    DbValue::ArrayInt64(a) => a.len() * 16,
                    _ => 0,
                }
        })
        .sum()
}

/// A Postgres failure as Spin reports it: the database's fields when the
/// server sent an error (with `as-text` and `extras` filled as Spin fills
/// them, so a guest parsing them sees the same), else the client error's
/// debug text.
fn query_failed(err: &tokio_postgres::Error) -> Error {
    let flattened = format!("{err:?}");
    match err.as_db_error() {
        Some(db) => Error::QueryFailed(QueryError::DbError(DbError {
            as_text: flattened,
            severity: db.severity().to_string(),
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            extras: [
                ("column", db.column().map(str::to_string)),
                ("constraint", db.constraint().map(str::to_string)),
                ("routine", db.routine().map(str::to_string)),
                ("hint", db.hint().map(str::to_string)),
                ("table", db.table().map(str::to_string)),
                ("datatype", db.datatype().map(str::to_string)),
                ("schema", db.schema().map(str::to_string)),
                ("file", db.file().map(str::to_string)),
                ("line", db.line().map(|l| l.to_string())),
                ("where_", db.where_().map(str::to_string)),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect(),
        })),
        None => Error::QueryFailed(QueryError::Text(flattened)),
    }
}

/// A parameter bound with the Postgres types its variant stands for.
#[derive(Debug)]
enum Param {
    Bool(bool),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Str(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    DateTime(NaiveDateTime),
    Uuid(uuid::Uuid),
    Json(serde_json::Value),
    Decimal(Decimal),
    I32Array(Vec<Option<i32>>),
    I64Array(Vec<Option<i64>>),
    DecimalArray(Vec<Option<Decimal>>),
    StrArray(Vec<Option<String>>),
    Null,
}

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::BadParameter(msg.to_string())
}

fn date(y: i32, m: u8, d: u8) -> Result<NaiveDate, Error> {
    NaiveDate::from_ymd_opt(y, m.into(), d.into()).ok_or_else(|| bad("invalid date"))
}

fn time(h: u8, m: u8, s: u8, ns: u32) -> Result<NaiveTime, Error> {
    NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
        .ok_or_else(|| bad("invalid time"))
}

fn decimal(s: &str) -> Result<Decimal, Error> {
    s.parse()
        .map_err(|e| bad(format!("invalid decimal {s:?}: {e}")))
}

impl TryFrom<ParameterValue> for Param {
    type Error = Error;

    fn try_from(value: ParameterValue) -> Result<Self, Error> {
        use ParameterValue as P;
        Ok(match value {
            P::Boolean(v) => Param::Bool(v),
            P::Int8(v) => Param::I8(v),
            P::Int16(v) => Param::I16(v),
            P::Int32(v) => Param::I32(v),
            P::Int64(v) => Param::I64(v),
            P::Floating32(v) => Param::F32(v),
            P::Floating64(v) => Param::F64(v),
            P::Str(v) => Param::Str(v),
            P::Binary(v) => Param::Bytes(v),
            P::Date((y, m, d)) => Param::Date(date(y, m, d)?),
            P::Time((h, m, s, ns)) => Param::Time(time(h, m, s, ns)?),
            P::Datetime((y, mo, d, h, mi, s, ns)) => {
                Param::DateTime(NaiveDateTime::new(date(y, mo, d)?, time(h, mi, s, ns)?))
            }
            P::Timestamp(secs) => Param::DateTime(
                DateTime::<Utc>::from_timestamp(secs, 0)
                    .ok_or_else(|| bad("timestamp out of range"))?
                    .naive_utc(),
            ),
            P::Uuid(s) => Param::Uuid(
                s.parse()
                    .map_err(|e| bad(format!("invalid uuid {s:?}: {e}")))?,
            ),
            P::Jsonb(bytes) => Param::Json(
                serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid jsonb: {e}")))?,
            ),
            P::Decimal(s) => Param::Decimal(decimal(&s)?),
            P::ArrayInt32(v) => Param::I32Array(v),
            P::ArrayInt64(v) => Param::I64Array(v),
            P::ArrayDecimal(v) => Param::DecimalArray(
                v.iter()
                    .map(|o| o.as_deref().map(decimal).transpose())
                    .collect::<Result<_, _>>()?,
            ),
            P::ArrayStr(v) => Param::StrArray(v),
            P::DbNull => Param::Null,
            P::RangeInt32(_) | P::RangeInt64(_) | P::RangeDecimal(_) | P::Interval(_) => {
                return Err(bad(
                    "range and interval parameters are not supported by this host",
                ));
            }
        })
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Param::Bool(v) => v.to_sql(ty, out),
            Param::I8(v) => v.to_sql(ty, out),
            Param::I16(v) => v.to_sql(ty, out),
            Param::I32(v) => v.to_sql(ty, out),
            Param::I64(v) => v.to_sql(ty, out),
            Param::F32(v) => v.to_sql(ty, out),
            Param::F64(v) => v.to_sql(ty, out),
            Param::Str(v) => v.to_sql(ty, out),
            Param::Bytes(v) => v.to_sql(ty, out),
            Param::Date(v) => v.to_sql(ty, out),
            Param::Time(v) => v.to_sql(ty, out),
            Param::DateTime(v) if *ty == Type::TIMESTAMPTZ => v.and_utc().to_sql(ty, out),
            Param::DateTime(v) => v.to_sql(ty, out),
            Param::Uuid(v) => v.to_sql(ty, out),
            Param::Json(v) => v.to_sql(ty, out),
            Param::Decimal(v) => v.to_sql(ty, out),
            Param::I32Array(v) => v.to_sql(ty, out),
            Param::I64Array(v) => v.to_sql(ty, out),
            Param::DecimalArray(v) => v.to_sql(ty, out),
            Param::StrArray(v) => v.to_sql(ty, out),
            Param::Null => Ok(IsNull::Yes),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        // Checked per value in `to_sql_checked` below.
        true
    }

    fn to_sql_checked(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let ok = match self {
            Param::Bool(_) => <bool as ToSql>::accepts(ty),
            Param::I8(_) => <i8 as ToSql>::accepts(ty),
            Param::I16(_) => <i16 as ToSql>::accepts(ty),
            Param::I32(_) => <i32 as ToSql>::accepts(ty),
            Param::I64(_) => <i64 as ToSql>::accepts(ty),
            Param::F32(_) => <f32 as ToSql>::accepts(ty),
            Param::F64(_) => <f64 as ToSql>::accepts(ty),
            Param::Str(_) => <String as ToSql>::accepts(ty),
            Param::Bytes(_) => <Vec<u8> as ToSql>::accepts(ty),
            Param::Date(_) => <NaiveDate as ToSql>::accepts(ty),
            Param::Time(_) => <NaiveTime as ToSql>::accepts(ty),
            Param::DateTime(_) => *ty == Type::TIMESTAMP || *ty == Type::TIMESTAMPTZ,
            Param::Uuid(_) => <uuid::Uuid as ToSql>::accepts(ty),
            Param::Json(_) => <serde_json::Value as ToSql>::accepts(ty),
            Param::Decimal(_) => <Decimal as ToSql>::accepts(ty),
            Param::I32Array(_) => <Vec<Option<i32>> as ToSql>::accepts(ty),
            Param::I64Array(_) => <Vec<Option<i64>> as ToSql>::accepts(ty),
            Param::DecimalArray(_) => <Vec<Option<Decimal>> as ToSql>::accepts(ty),
            Param::StrArray(_) => <Vec<Option<String>> as ToSql>::accepts(ty),
            Param::Null => true,
        };
        if !ok {
            return Err(format!(
                "cannot bind a {} parameter to a column of type {ty}",
                self.kind()
            )
            .into());
        }
        self.to_sql(ty, out)
    }
}

impl Param {
    fn kind(&self) -> &'static str {
        match self {
            Param::Bool(_) => "boolean",
            Param::I8(_) => "int8",
            Param::I16(_) => "int16",
            Param::I32(_) => "int32",
            Param::I64(_) => "int64",
            Param::F32(_) => "floating32",
            Param::F64(_) => "floating64",
            Param::Str(_) => "str",
            Param::Bytes(_) => "binary",
            Param::Date(_) => "date",
            Param::Time(_) => "time",
            Param::DateTime(_) => "datetime",
            Param::Uuid(_) => "uuid",
            Param::Json(_) => "jsonb",
            Param::Decimal(_) => "decimal",
            Param::I32Array(_) => "array-int32",
            Param::I64Array(_) => "array-int64",
            Param::DecimalArray(_) => "array-decimal",
            Param::StrArray(_) => "array-str",
            Param::Null => "db-null",
        }
    }
}

fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSON | Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => DbDataType::ArrayStr,
        _ => DbDataType::Other(ty.name().to_string()),
    }
}

/// Raw bytes of a value of any type, for `unsupported`.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw.to_vec()))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

fn datetime(v: NaiveDateTime) -> DbValue {
    DbValue::Datetime((
        v.year(),
        v.month() as u8,
        v.day() as u8,
        v.hour() as u8,
        v.minute() as u8,
        v.second() as u8,
        v.nanosecond(),
    ))
}

fn db_value(
    row: &tokio_postgres::Row,
    i: usize,
    ty: &Type,
) -> Result<DbValue, tokio_postgres::Error> {
    fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> DbValue) -> DbValue {
        v.map_or(DbValue::DbNull, f)
    }
    Ok(match *ty {
        Type::BOOL => or_null(row.try_get(i)?, DbValue::Boolean),
        Type::CHAR => or_null(row.try_get(i)?, DbValue::Int8),
        Type::INT2 => or_null(row.try_get(i)?, DbValue::Int16),
        Type::INT4 => or_null(row.try_get(i)?, DbValue::Int32),
        Type::INT8 => or_null(row.try_get(i)?, DbValue::Int64),
        Type::FLOAT4 => or_null(row.try_get(i)?, DbValue::Floating32),
        Type::FLOAT8 => or_null(row.try_get(i)?, DbValue::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            or_null(row.try_get(i)?, DbValue::Str)
        }
        Type::BYTEA => or_null(row.try_get(i)?, DbValue::Binary),
        Type::DATE => or_null(row.try_get::<_, Option<NaiveDate>>(i)?, |d| {
            DbValue::Date((d.year(), d.month() as u8, d.day() as u8))
        }),
        Type::TIME => or_null(row.try_get::<_, Option<NaiveTime>>(i)?, |t| {
            DbValue::Time((
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
                t.nanosecond(),
            ))
        }),
        Type::TIMESTAMP => or_null(row.try_get::<_, Option<NaiveDateTime>>(i)?, datetime),
        Type::TIMESTAMPTZ => or_null(row.try_get::<_, Option<DateTime<Utc>>>(i)?, |t| {
            datetime(t.naive_utc())
        }),
        Type::UUID => or_null(row.try_get::<_, Option<uuid::Uuid>>(i)?, |u| {
            DbValue::Uuid(u.to_string())
        }),
        Type::JSON | Type::JSONB => or_null(row.try_get::<_, Option<serde_json::Value>>(i)?, |j| {
            DbValue::Jsonb(serde_json::to_vec(&j).unwrap_or_default())
        }),
        Type::NUMERIC => or_null(row.try_get::<_, Option<Decimal>>(i)?, |d| {
            DbValue::Decimal(d.to_string())
        }),
        Type::INT4_ARRAY => or_null(row.try_get(i)?, DbValue::ArrayInt32),
        Type::INT8_ARRAY => or_null(row.try_get(i)?, DbValue::ArrayInt64),
        Type::NUMERIC_ARRAY => or_null(row.try_get::<_, Option<Vec<Option<Decimal>>>>(i)?, |v| {
            DbValue::ArrayDecimal(v.into_iter().map(|d| d.map(|d| d.to_string())).collect())
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => or_null(row.try_get(i)?, DbValue::ArrayStr),
        _ => or_null(row.try_get::<_, Option<Raw>>(i)?, |r| {
            DbValue::Unsupported(r.0)
        }),
    })
}
