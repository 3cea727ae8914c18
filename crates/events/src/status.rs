//! The event path's heartbeat in Postgres (`bridge_status`), for the
//! functions' `GET /health`: Spin functions cannot reach a broker, so the
//! process that does writes what it sees where they can read it.
//!
//! Every [`EVERY`] the row of this process is upserted with its broker, the
//! state of each connected part ([`crate::health`]), the outbox cursors
//! it reads and, with a broker, the dead letters waiting there
//! ([`Waiting`]); a reader treats rows older than three beats as a bridge
//! that is gone. Rows of processes gone for an hour are removed, and a process
//! removes its own at shutdown.
//!
//! Each beat also samples the outbox behind those cursors into the
//! process's metrics ([`crate::metrics`]): the backlog and its oldest
//! event's age, and without a broker each subscription's lag.

use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::Client;

use spinmesh_config::database::Database;

use crate::dead_letters::waiting::Waiting;
use crate::{health, metrics};

/// How often the row is written.
pub const EVERY: Duration = Duration::from_secs(5);

/// Every how many beats rows of processes gone for an hour are removed
/// (a minute's worth).
const PRUNE_EVERY: u32 = 12;

/// What one process writes.
#[derive(Debug, Clone)]
pub struct Beat {
    /// Unique per process: role, process id and a random suffix.
    pub name: String,
    /// `up` or `relay`.
    pub role: &'static str,
    /// `embedded`, `amqp` or `kafka`.
    pub broker: &'static str,
    /// The outbox cursors this process reads.
    pub cursors: Vec<String>,
}

impl Beat {
    /// A beat named for this process.
    pub fn new(role: &'static str, broker: &'static str, cursors: Vec<String>) -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            name: format!("{role}:{}:{}", std::process::id(), &suffix[..8]),
            role,
            broker,
            cursors,
        }
    }
}

/// Writes `beat` every [`EVERY`] until `shutdown`, then removes it, with
/// what `waiting` counts each time. A database outage only skips beats
/// (logged once per outage); a failed count is written as unknown.
pub async fn run(
    database: Database,
    beat: Beat,
    mut waiting: Option<Waiting>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut client: Option<Client> = None;
    let mut failing = false;
    let mut beats: u32 = 0;
    while !*shutdown.borrow() {
        // Rows of processes gone for an hour are removed on the first beat
        // and then every [`PRUNE_EVERY`] beats, not on every one.
        let prune = beats.is_multiple_of(PRUNE_EVERY);
        beats = beats.wrapping_add(1);
        let dead_letters = match waiting.as_mut() {
            Some(waiting) => match waiting.count().await {
                Ok(n) => Some(n),
                Err(err) => {
                    tracing::debug!(error = %format!("{err:#}"), "dead letters in the broker not counted");
                    None
                }
            },
            None => None,
        };
        match write(&database, &mut client, &beat, dead_letters, prune).await {
            Ok(()) => failing = false,
            Err(err) => {
                client = None;
                if !failing {
                    tracing::warn!(error = %format!("{err:#}"), "event path heartbeat not written");
                }
                failing = true;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = shutdown.changed() => {}
        }
    }
    if let Some(client) = client {
        let _ = client
            .execute("DELETE FROM bridge_status WHERE name = $1", &[&beat.name])
            .await;
    }
}

async fn write(
    database: &Database,
    client: &mut Option<Client>,
    beat: &Beat,
    dead_letters: Option<i64>,
    prune: bool,
) -> anyhow::Result<()> {
    if client.is_none() {
        *client = Some(database.connect().await?);
    }
    let client = client.as_ref().expect("connected above");
    let parts = serde_json::to_value(health::snapshot())?;
    client
        .execute(
            "INSERT INTO bridge_status (name, role, broker, parts, cursors, dead_letters, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, now())
             ON CONFLICT (name) DO UPDATE
                SET parts = EXCLUDED.parts, cursors = EXCLUDED.cursors,
                    dead_letters = EXCLUDED.dead_letters, updated_at = now()",
            &[&beat.name, &beat.role, &beat.broker, &parts, &beat.cursors, &dead_letters],
        )
        .await?;
    if prune {
        client
            .execute(
                "DELETE FROM bridge_status WHERE updated_at < now() - interval '1 hour'",
                &[],
            )
            .await?;
    }
    sample(client, beat).await
}

/// Per cursor of `beat`: the outbox rows past it and the age of the
/// oldest (a cursor not yet created has every row behind it). Through the
/// `(txid, position)` index, so it reads only the tail.
const BEHIND_CURSORS: &str = "
    SELECT w.name, b.events, b.oldest
      FROM unnest($1::text[]) AS w(name)
      LEFT JOIN bridge_cursors c ON c.subscription = w.name
     CROSS JOIN LATERAL (
           SELECT count(*)::bigint AS events,
                  extract(epoch FROM now() - min(o.time))::float8 AS oldest
             FROM outbox o
            WHERE (o.txid, o.position)
                  > (coalesce(c.txid, '0'::xid8), coalesce(c.position, 0))) b";

/// Sets the backlog gauges (the slowest cursor's) and, when the cursors are
/// the subscriptions' own (no broker), each subscription's lag.
async fn sample(client: &Client, beat: &Beat) -> anyhow::Result<()> {
    let rows = client.query(BEHIND_CURSORS, &[&beat.cursors]).await?;
    let (mut events, mut oldest) = (0u64, 0f64);
    for row in rows {
        let name: String = row.get(0);
        let behind = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
        if beat.broker == "embedded" {
            metrics::lag(&name, behind);
        }
        events = events.max(behind);
        oldest = oldest.max(row.get::<_, Option<f64>>(2).unwrap_or(0.0));
    }
    metrics::backlog(events, oldest);
    Ok(())
}
