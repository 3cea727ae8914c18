//! The event path through a real Kafka-protocol broker (Tansu in CI;
//! `SPINMESH_KAFKA_BROKERS` points the tests elsewhere): outbox → relay →
//! a topic per aggregate → a consumer group per subscription → the
//! functions. Each test uses its own topics and groups and deletes them.

use crate::common::scenarios;
use crate::common::transport::Transport;

#[tokio::test]
async fn delivered_once_in_order_per_subject() {
    scenarios::delivered_once_in_order_per_subject(Transport::kafka()).await;
}

#[tokio::test]
async fn retried_then_dead_lettered() {
    scenarios::retried_then_dead_lettered(Transport::kafka()).await;
}

#[tokio::test]
async fn killed_mid_stream_loses_nothing() {
    scenarios::killed_mid_stream_loses_nothing(Transport::kafka()).await;
}

#[tokio::test]
async fn registration_reaches_functions_once() {
    scenarios::registration_reaches_functions_once(Transport::kafka()).await;
}

#[tokio::test]
async fn host_writes_wake_readers_without_a_notify_per_statement() {
    scenarios::host_writes_wake_readers_without_a_notify_per_statement(Transport::kafka()).await;
}

#[tokio::test]
async fn http_invoker_and_forged_signatures() {
    scenarios::http_invoker_and_forged_signatures(Transport::kafka()).await;
}

#[tokio::test]
async fn a_refused_batch_is_split_into_single_events() {
    scenarios::a_refused_batch_is_split_into_single_events(Transport::kafka()).await;
}

#[tokio::test]
async fn store_saga_end_to_end() {
    crate::common::saga::saga_end_to_end(Transport::kafka()).await;
}

#[tokio::test]
async fn store_unpaid_orders_time_out() {
    crate::common::saga::unpaid_orders_time_out(Transport::kafka()).await;
}

#[tokio::test]
async fn posts_follow_user_events_and_replay_rebuilds_profiles() {
    crate::common::posts::posts_follow_user_events(Transport::kafka()).await;
}

/// A second bridge joining a subscription's group mid-stream takes
/// partitions from the first. The first lets the deliveries it started
/// for them finish and commits before giving them up (the hand-over), so
/// the second starts where the first stopped: every event is delivered
/// exactly once. Multi-threaded: the hand-over waits on the consumer's
/// task while the lanes run elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_hands_partitions_over_without_redelivery() {
    use std::collections::HashSet;
    use std::time::Duration;

    use bridge::events::invoke::Invoker;
    use serde_json::json;

    use crate::common::Logs;
    use crate::common::subscriber::{count, delivered_ids, emit, eventually, fast, probe_app};

    const EVENTS: usize = 900;
    let logs = Logs::capture().expect("the test's own log capture");
    let mut transport = Transport::kafka();
    if let Transport::Kafka(kafka) = &mut transport {
        // Few messages in flight, so the second bridge gets real work.
        kafka.max_in_flight = 16;
        // Room for a loaded machine: a member that misses its session is
        // evicted without a hand-over, which redelivers legitimately.
        kafka.session_timeout = Duration::from_secs(6);
    }
    let (app, db) = probe_app(None, Default::default()).await;
    let mut expected = HashSet::new();
    for seq in 0..EVENTS {
        let subject = format!("r{}", seq % 6);
        let data = json!({"seq": seq, "behavior": "slow"});
        expected.insert(emit(&db, &subject, "probe.step", data).await);
    }
    let manifest = crate::common::root().join("bridge/tests/probe/spin.toml");
    let invoker = || Invoker::Embedded(app.running.as_ref().unwrap().host.clone());
    let first = transport.start(&app, &manifest, invoker(), None, fast());
    eventually(
        "the first bridge under way",
        Duration::from_secs(30),
        || async { count(&db, "SELECT count(*) FROM probe_attempts").await >= 20 },
    )
    .await;
    let second = transport.start(&app, &manifest, invoker(), None, fast());
    eventually("every event", Duration::from_secs(90), || async {
        count(&db, "SELECT count(DISTINCT event_id) FROM probe_attempts").await == EVENTS as i64
    })
    .await;
    assert_eq!(delivered_ids(&db).await, expected);
    let log = logs.text();
    let total = count(&db, "SELECT count(*) FROM probe_attempts").await;
    assert_eq!(
        total, EVENTS as i64,
        "no event delivered twice across the rebalance; bridge log:\n{log}"
    );
    let handed_over_while_busy = log
        .lines()
        .any(|l| l.contains("partitions handed over") && !l.contains("waited_for=0"));
    assert!(
        handed_over_while_busy,
        "a rebalance took partitions with deliveries in flight:\n{log}"
    );
    assert!(
        !log.contains("giving up partitions with deliveries still running"),
        "{log}"
    );
    first.stop().await;
    second.stop().await;
}
