//! The system's state as Postgres holds it: the bridge's heartbeats
//! (`bridge_status`, with the dead letters they count in the broker), the
//! outbox behind the cursors they read, and the dead-letter table; read in
//! one statement.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use kit::db::{self, Statement};
use serde::Deserialize;

/// A heartbeat older than this (three beats) is a bridge that is gone.
pub const FRESH_SECONDS: u64 = 15;

/// What the statement found.
#[derive(Debug)]
pub struct Snapshot {
    /// Outbox events behind the slowest cursor the bridges read.
    pub backlog: i64,
    /// Age of the oldest of those, seconds; `None` without a backlog.
    pub oldest_unpublished_age_seconds: Option<f64>,
    /// Dead letters in the table, and those the bridges counted in the
    /// broker (each bridge counts the same queues or topics: the largest
    /// count, not their sum).
    pub dead_letters: i64,
    /// The bridges' reports.
    pub events: EventPath,
}

/// The event path as the bridges report it.
#[derive(Debug)]
pub enum EventPath {
    /// No bridge has written a heartbeat lately.
    Silent,
    /// At least one has.
    Reported {
        /// The brokers they use.
        brokers: Vec<String>,
        /// How many bridge processes reported.
        bridges: usize,
        /// Parts that are down, by name.
        failing: Vec<String>,
    },
}

#[derive(Debug, Deserialize)]
struct Beat {
    broker: String,
    parts: BTreeMap<String, Part>,
}

#[derive(Debug, Deserialize)]
struct Part {
    up: bool,
}

/// The backlog counts rows past the slowest cursor the reporting bridges
/// read (all cursors when none reports): through the `(txid, position)`
/// index when there is a cursor, every row when there is none.
fn statement() -> Statement {
    Statement::new(
        "SELECT (SELECT count(*) FROM backlog)::bigint,
                (SELECT extract(epoch FROM now() - min(time)) FROM backlog)::float8,
                ((SELECT count(*) FROM bridge_dead_letters)
                 + coalesce((SELECT max(dead_letters) FROM beats), 0))::bigint,
                (SELECT coalesce(json_agg(json_build_object('broker', broker, 'parts', parts)), '[]')
                   FROM beats)::text",
    )
    .with(format!(
        "beats AS (SELECT broker, parts, cursors, dead_letters FROM bridge_status
                    WHERE updated_at > now() - interval '{FRESH_SECONDS} seconds')"
    ))
    .with("wanted AS (SELECT unnest(cursors) AS name FROM beats)")
    .with(
        "slowest AS (SELECT txid, position FROM bridge_cursors
                      WHERE subscription IN (SELECT name FROM wanted)
                         OR NOT EXISTS (SELECT 1 FROM wanted)
                      ORDER BY txid, position LIMIT 1)",
    )
    .with(
        "backlog AS (SELECT o.time FROM slowest s
                       JOIN outbox o ON (o.txid, o.position) > (s.txid, s.position)
                     UNION ALL
                     SELECT o.time FROM outbox o WHERE NOT EXISTS (SELECT 1 FROM slowest))",
    )
}

/// Reads the snapshot.
///
/// # Errors
///
/// When Postgres cannot be reached or the statement fails.
pub fn read() -> anyhow::Result<Snapshot> {
    let conn = db::connect().map_err(|e| anyhow::anyhow!("{e}"))?;
    let row = conn
        .one(&statement(), &[])
        .map_err(|e| anyhow::anyhow!("{}", e.doing("reading the system's state")))?;
    let beats: String = db::column(&row, 3, "beats")?;
    let beats: Vec<Beat> = serde_json::from_str(&beats).context("bridge_status rows")?;
    Ok(Snapshot {
        backlog: db::column(&row, 0, "backlog")?,
        oldest_unpublished_age_seconds: db::column(&row, 1, "oldest")?,
        dead_letters: db::column(&row, 2, "dead_letters")?,
        events: summarize(beats),
    })
}

fn summarize(beats: Vec<Beat>) -> EventPath {
    if beats.is_empty() {
        return EventPath::Silent;
    }
    let brokers: BTreeSet<String> = beats.iter().map(|b| b.broker.clone()).collect();
    let failing: BTreeSet<String> = beats
        .iter()
        .flat_map(|b| b.parts.iter())
        .filter(|(_, part)| !part.up)
        .map(|(name, _)| name.clone())
        .collect();
    EventPath::Reported {
        brokers: brokers.into_iter().collect(),
        bridges: beats.len(),
        failing: failing.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(broker: &str, parts: &[(&str, bool)]) -> Beat {
        Beat {
            broker: broker.into(),
            parts: parts
                .iter()
                .map(|(name, up)| ((*name).to_owned(), Part { up: *up }))
                .collect(),
        }
    }

    #[test]
    fn no_heartbeat_is_a_silent_event_path() {
        assert!(matches!(summarize(vec![]), EventPath::Silent));
    }

    #[test]
    fn any_part_down_in_any_bridge_is_named() {
        let summary = summarize(vec![
            beat("amqp", &[("relay:amqp", true)]),
            beat(
                "amqp",
                &[("amqp consumer orders", false), ("relay:amqp", true)],
            ),
        ]);
        let EventPath::Reported {
            brokers,
            bridges,
            failing,
        } = summary
        else {
            panic!("reported");
        };
        assert_eq!(brokers, ["amqp"]);
        assert_eq!(bridges, 2);
        assert_eq!(failing, ["amqp consumer orders"]);
    }
}
