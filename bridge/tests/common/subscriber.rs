//! Helpers for event-path tests: the probe app as a controllable
//! subscriber, raw outbox writes, and polling for an outcome.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use bridge::app::BrokerConfig;
use bridge::events::dispatch::DispatchConfig;
use serde_json::Value;
use tokio_postgres::Client;

use super::{Options, TestApp, root};

/// Retry settings that keep tests quick.
pub fn fast() -> DispatchConfig {
    DispatchConfig {
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        delivery_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(200),
        ..DispatchConfig::default()
    }
}

/// The probe application (its `probe.*` subscription delivers to
/// `/probe/events`) on a fresh, migrated database with the
/// `probe_attempts` table the probe records every attempt in.
pub async fn probe_app(events: Option<DispatchConfig>, broker: BrokerConfig) -> (TestApp, Client) {
    let app = TestApp::spawn_with(Options {
        manifest: root().join("bridge/tests/probe/spin.toml"),
        migrate: true,
        extra_vars: BTreeMap::from([("secret_token".to_string(), "s3cret".to_string())]),
        events,
        broker,
        ..Options::default()
    })
    .await;
    let client = app.db().await;
    client
        .batch_execute(
            "CREATE TABLE probe_attempts (
                id bigserial PRIMARY KEY, event_id uuid NOT NULL, subject text NOT NULL,
                seq bigint NOT NULL, outcome text NOT NULL, signed bool NOT NULL);
             CREATE TABLE probe_fixes (fixed bool NOT NULL)",
        )
        .await
        .unwrap();
    (app, client)
}

/// Writes an outbox row as a function would.
pub async fn emit(client: &Client, subject: &str, ty: &str, data: Value) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    client
        .execute(
            "INSERT INTO outbox (id, source, type, subject, aggregate, data)
             VALUES ($1, '/test', $2, $3, 'probes', $4)",
            &[&id, &ty, &subject, &data],
        )
        .await
        .unwrap();
    id
}

/// Polls `check` until it holds, or panics naming `what`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A single `count(*)`-style number.
pub async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// The event id of every attempt the probe has seen, in arrival order.
pub async fn attempts_in_order(client: &Client) -> Vec<uuid::Uuid> {
    client
        .query("SELECT event_id FROM probe_attempts ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Every event id the probe has received at least once.
pub async fn delivered_ids(client: &Client) -> std::collections::HashSet<uuid::Uuid> {
    client
        .query("SELECT DISTINCT event_id FROM probe_attempts", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}
