//! The embedded event path (no broker): each subscription reads the
//! outbox through its own cursor, against the real Postgres, through the
//! real host. The shared scenarios run here as they do for RabbitMQ and
//! Kafka, plus what only the outbox reader can show.

use std::time::Duration;

use bridge::events::invoke::Invoker;
use serde_json::json;

use crate::common::root;
use crate::common::scenarios;
use crate::common::subscriber::{count, emit, eventually, fast, probe_app};
use crate::common::transport::Transport;

#[tokio::test]
async fn delivered_once_in_order_per_subject() {
    scenarios::delivered_once_in_order_per_subject(Transport::Embedded).await;
}

#[tokio::test]
async fn retried_then_dead_lettered() {
    scenarios::retried_then_dead_lettered(Transport::Embedded).await;
}

#[tokio::test]
async fn killed_mid_stream_loses_nothing() {
    scenarios::killed_mid_stream_loses_nothing(Transport::Embedded).await;
}

#[tokio::test]
async fn registration_reaches_functions_once() {
    scenarios::registration_reaches_functions_once(Transport::Embedded).await;
}

#[tokio::test]
async fn host_writes_wake_readers_without_a_notify_per_statement() {
    scenarios::host_writes_wake_readers_without_a_notify_per_statement(Transport::Embedded).await;
}

#[tokio::test]
async fn http_invoker_and_forged_signatures() {
    scenarios::http_invoker_and_forged_signatures(Transport::Embedded).await;
}

#[tokio::test]
async fn a_refused_batch_is_split_into_single_events() {
    scenarios::a_refused_batch_is_split_into_single_events(Transport::Embedded).await;
}

#[tokio::test]
async fn a_late_committing_transaction_is_not_skipped() {
    let (app, db) = probe_app(None, Default::default()).await;
    let mut slow = app.db().await;
    // Transaction A takes the lower position but commits last.
    let tx = slow.transaction().await.unwrap();
    let early = uuid::Uuid::new_v4();
    tx.execute(
        "INSERT INTO outbox (id, source, type, subject, aggregate, data) VALUES ($1, '/t', 'probe.step', 'x', 'p', '{\"seq\":1}')",
        &[&early],
    )
    .await
    .unwrap();
    // Same subject: their relative order is part of the contract.
    let late = emit(&db, "x", "probe.step", json!({"seq": 2})).await;
    let invoker = Invoker::Embedded(app.running.as_ref().unwrap().host.clone());
    let manifest = root().join("bridge/tests/probe/spin.toml");
    let runner = Transport::Embedded.start(&app, &manifest, invoker, None, fast());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM probe_attempts").await,
        0,
        "nothing passes an open transaction's events"
    );
    tx.commit().await.unwrap();
    eventually("both events", Duration::from_secs(10), || async {
        count(&db, "SELECT count(*) FROM probe_attempts").await == 2
    })
    .await;
    let order: Vec<uuid::Uuid> = db
        .query("SELECT event_id FROM probe_attempts ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(order, [early, late]);
    runner.stop().await;
}

#[tokio::test]
async fn store_saga_end_to_end() {
    crate::common::saga::saga_end_to_end(Transport::Embedded).await;
}

#[tokio::test]
async fn store_unpaid_orders_time_out() {
    crate::common::saga::unpaid_orders_time_out(Transport::Embedded).await;
}

#[tokio::test]
async fn posts_follow_user_events_and_replay_rebuilds_profiles() {
    crate::common::posts::posts_follow_user_events(Transport::Embedded).await;
}
