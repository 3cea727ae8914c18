//! `GET /health`: whether the whole system is usable.
//!
//! Each dependency is checked on its own, so the answer names every
//! failing part: Postgres, Redis, and the event path as the bridge reports
//! it (see [`crate::system`]). 200 when all three work, 503 otherwise. The
//! outbox backlog and the dead letters are reported, not judged: a
//! backlog is normal under load, and dead letters wait for an operator.
//! Failure details go to the log, not to the (public) answer.

use kit::{ApiError, cache, json};
use serde_json::{Value, json};
use spin_sdk::http::{Request, Response};

use crate::system::{self, EventPath};

/// Handles the request.
///
/// # Errors
///
/// Only if serialization fails (a bug): every failure of a dependency is
/// part of the answer.
pub fn handle(_: &Request) -> Result<Response, ApiError> {
    let redis = check_redis();
    let (postgres, outbox, dead_letters, broker) = match system::read() {
        Ok(snapshot) => {
            let broker = broker_check(&snapshot.events);
            let outbox = json!({
                "status": "up",
                "backlog": snapshot.backlog,
                "oldest_unpublished_age_seconds": snapshot.oldest_unpublished_age_seconds,
            });
            let dead_letters = json!({"status": "up", "waiting": snapshot.dead_letters});
            (json!({"status": "up"}), outbox, dead_letters, broker)
        }
        Err(err) => {
            eprintln!("health: postgres: {err:#}");
            let unknown = json!({"status": "unknown", "reason": "postgres is down"});
            (
                json!({"status": "down"}),
                unknown.clone(),
                unknown.clone(),
                unknown,
            )
        }
    };
    let usable = [&postgres, &redis, &broker]
        .iter()
        .all(|check| check["status"] == "up");
    let body = json!({
        "status": if usable { "ok" } else { "unavailable" },
        "checks": {
            "postgres": postgres,
            "redis": redis,
            "broker": broker,
            "outbox": outbox,
            "dead_letters": dead_letters,
        },
    });
    let mut response = json::respond(if usable { 200 } else { 503 }, &body)?;
    if !usable {
        response.set_header("retry-after", "5");
    }
    Ok(response)
}

fn check_redis() -> Value {
    let pinged = cache::connect().and_then(|conn| {
        conn.execute("PING", &[])
            .map_err(|e| cache::classify(e, "PING"))
    });
    match pinged {
        Ok(_) => json!({"status": "up"}),
        Err(err) => {
            eprintln!("health: redis: {err:#}");
            json!({"status": "down"})
        }
    }
}

fn broker_check(events: &EventPath) -> Value {
    match events {
        EventPath::Silent => json!({
            "status": "down",
            "reason": format!(
                "no bridge has reported in {} s (is `bridge up` or `bridge relay` running?)",
                system::FRESH_SECONDS
            ),
        }),
        EventPath::Reported {
            brokers,
            bridges,
            failing,
        } => json!({
            "status": if failing.is_empty() { "up" } else { "down" },
            "kind": brokers.join(", "),
            "bridges": bridges,
            "failing": failing,
        }),
    }
}
