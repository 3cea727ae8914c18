//! The analytics tables: events and the counters kept beside them.
//!
//! Recording an event is one statement: the `recorded` CTE inserts it, and
//! sibling CTEs upsert the per-action and per-user counters and bump the
//! total from `recorded`'s output. Reads never scan events.
//!
//! The counters are hot (every event touches the total and its action's
//! count; a busy user's count is touched by each of their events), so each
//! is kept in 16 shards (`migrations/0006_…`): a statement bumps
//! the shard of its database connection, and reads add up the shards.

use std::collections::BTreeMap;

use kit::ApiError;
use kit::db::{self, Connection, Doing as _, ParameterValue, Row, Statement};
use kit::idempotency::{CLAIMED, Claim};

use crate::tracked::Tracked;

/// The counter CTEs that follow a `recorded AS (...)` CTE returning
/// `user_id, action`.
const COUNTERS: [&str; 3] = [
    "by_action AS (
        INSERT INTO analytics_action_counts (action, shard, count)
        SELECT action, 1 + pg_backend_pid() % 16, count(*) FROM recorded GROUP BY action
        ON CONFLICT (action, shard)
        DO UPDATE SET count = analytics_action_counts.count + EXCLUDED.count)",
    "by_user AS (
        INSERT INTO analytics_user_action_counts (user_id, action, shard, count)
        SELECT user_id, action, 1 + pg_backend_pid() % 16, count(*)
          FROM recorded GROUP BY user_id, action
        ON CONFLICT (user_id, action, shard)
        DO UPDATE SET count = analytics_user_action_counts.count + EXCLUDED.count)",
    "total AS (
        UPDATE analytics_totals SET count = count + (SELECT count(*) FROM recorded)
        WHERE id = 1 + pg_backend_pid() % 16 AND EXISTS (SELECT 1 FROM recorded)
        RETURNING count)",
];

/// Selects the new total (NULL if the statement recorded nothing) and how
/// many events it recorded.
const COUNT_RECORDED: &str = "\
    SELECT CASE WHEN EXISTS (SELECT 1 FROM total)
                THEN (SELECT sum(count) FROM analytics_totals)::bigint
                     + (SELECT count(*) FROM recorded) END,
           (SELECT count(*) FROM recorded)";

/// The statement recording what `ctes` (ending with `recorded`) insert and
/// counting it.
fn recording(ctes: &[&str]) -> Statement {
    ctes.iter()
        .chain(COUNTERS.iter())
        .fold(Statement::new(COUNT_RECORDED), |s, cte| s.with(*cte))
}

/// `user_id`, `action`, `occurred_at` as parameters.
fn event_params(event: &Tracked) -> [ParameterValue; 3] {
    [
        ParameterValue::Str(event.user_id.as_str().to_owned()),
        ParameterValue::Str(event.action.as_str().to_owned()),
        ParameterValue::Str(event.occurred_at.to_rfc3339()),
    ]
}

/// Records a client-posted event; returns the total number of events.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn record(conn: &Connection, event: &Tracked) -> Result<i64, ApiError> {
    let sql = recording(&["recorded AS (
            INSERT INTO analytics_events (user_id, action, occurred_at)
            VALUES ($1::text, $2::text, $3::text::timestamptz)
            RETURNING user_id, action)"]);
    let row = conn
        .one(&sql, &event_params(event))
        .doing("recording an event")?;
    let total: Option<i64> = column(&row, 0, "total")?;
    total.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("analytics_totals has no row")))
}

/// Records a delivered event once per `claim`; `true` if it was new.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn record_once(conn: &Connection, claim: &Claim, event: &Tracked) -> Result<bool, ApiError> {
    let recorded = format!(
        "recorded AS (
            INSERT INTO analytics_events (event_id, user_id, action, occurred_at)
            SELECT $2::uuid, $3::text, $4::text, $5::text::timestamptz
            WHERE {CLAIMED}
            RETURNING user_id, action)"
    );
    let row = conn
        .one(
            &recording(&[Claim::cte(), &recorded]),
            &claim.params(event_params(event)),
        )
        .doing("recording a delivered event")?;
    let recorded: i64 = column(&row, 1, "recorded")?;
    Ok(recorded > 0)
}

/// Records a batch of delivered events in one statement, each at most
/// once per `consumer` (ids already processed, or repeated within the
/// batch, are skipped). Returns how many were new.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn record_batch_once(
    conn: &Connection,
    consumer: &str,
    events: &[(uuid::Uuid, Tracked)],
) -> Result<i64, ApiError> {
    let rows: Vec<serde_json::Value> = events
        .iter()
        .map(|(id, t)| {
            serde_json::json!({
                "event_id": id,
                "user_id": t.user_id.as_str(),
                "action": t.action.as_str(),
                "occurred_at": t.occurred_at.to_rfc3339(),
            })
        })
        .collect();
    let [input, claim] =
        Claim::batch_ctes("event_id uuid, user_id text, action text, occurred_at timestamptz");
    let sql = recording(&[
        input.as_str(),
        claim.as_str(),
        "recorded AS (
            INSERT INTO analytics_events (event_id, user_id, action, occurred_at)
            SELECT i.event_id, i.user_id, i.action, i.occurred_at
              FROM input i JOIN claim c USING (event_id)
            RETURNING user_id, action)",
    ]);
    let params = Claim::batch_params(consumer, rows);
    let row = conn
        .one(&sql, &params)
        .doing("recording delivered events")?;
    column(&row, 1, "recorded")
}

/// Every action's count.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn by_action(conn: &Connection) -> Result<BTreeMap<String, i64>, ApiError> {
    let sql = Statement::new(
        "SELECT action, sum(count)::bigint FROM analytics_action_counts \
         GROUP BY action ORDER BY action",
    );
    let rows = conn.rows(&sql, &[]).doing("reading action counts")?;
    counts(&rows)
}

/// One user's count per action.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn by_user(conn: &Connection, user_id: &str) -> Result<BTreeMap<String, i64>, ApiError> {
    let sql = Statement::new(
        "SELECT action, sum(count)::bigint FROM analytics_user_action_counts \
         WHERE user_id = $1::text GROUP BY action ORDER BY action",
    );
    let rows = conn
        .rows(&sql, &[ParameterValue::Str(user_id.to_owned())])
        .doing("reading a user's action counts")?;
    counts(&rows)
}

fn counts(rows: &[Row]) -> Result<BTreeMap<String, i64>, ApiError> {
    rows.iter()
        .map(|row| Ok((db::column(row, 0, "action")?, db::column(row, 1, "count")?)))
        .collect::<anyhow::Result<_>>()
        .map_err(ApiError::Internal)
}

fn column<T: db::Decode>(row: &[db::DbValue], index: usize, name: &str) -> Result<T, ApiError> {
    db::column(row, index, name).map_err(ApiError::Internal)
}
