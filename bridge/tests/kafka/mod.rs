//! The event path through a real Kafka-protocol broker (Tansu in CI;
//! `SPINMESH_KAFKA_BROKERS` points the tests elsewhere): outbox → relay →
//! a topic per aggregate → a consumer group per subscription → the
//! functions. Each test uses topics and groups of its own.
//!
//! Every test runs on a multi-threaded runtime, as `bridge up` does: a
//! rebalance (a pattern subscription finding a new topic is one) waits in
//! its hand-over for the deliveries in flight, which on a current-thread
//! runtime it cannot, so there it gives them up and they are redelivered.

use crate::common::scenarios;
use crate::common::transport::Transport;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_once_in_order_per_subject() {
    scenarios::delivered_once_in_order_per_subject(Transport::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_then_dead_lettered() {
    scenarios::retried_then_dead_lettered(Transport::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_stream_loses_nothing() {
    scenarios::killed_mid_stream_loses_nothing(Transport::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_reaches_functions_once() {
    scenarios::registration_reaches_functions_once(Transport::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_writes_wake_readers_without_a_notify_per_statement() {
    scenarios::host_writes_wake_readers_without_a_notify_per_statement(Transport::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_invoker_and_forged_signatures() {
    scenarios::http_invoker_and_forged_signatures(Transport::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_split_into_single_events() {
    scenarios::a_refused_batch_is_split_into_single_events(Transport::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_saga_end_to_end() {
    crate::common::saga::saga_end_to_end(Transport::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_unpaid_orders_time_out() {
    crate::common::saga::unpaid_orders_time_out(Transport::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

/// A consumer group reads only the topics that hold the types its
/// subscription wants: the relay records which aggregate each type was
/// published under, and the group follows that record. The probe's group
/// (`probe.*`) never reads the `noise` topic, so it commits no offset
/// there, while a `probe.*` type first published under a new aggregate,
/// after the group started, still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_reads_only_the_topics_of_its_types() {
    use std::time::Duration;

    use bridge::events::invoke::Invoker;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, TopicPartitionList};
    use serde_json::json;

    use crate::common::Logs;
    use crate::common::subscriber::{count, emit, eventually, fast, probe_app};

    let logs = Logs::capture().expect("the test's own log capture");
    let transport = Transport::kafka();
    let Transport::Kafka(kafka) = &transport else {
        unreachable!()
    };
    let (app, db) = probe_app(None, Default::default()).await;
    let insert = |ty: &'static str, aggregate: &'static str| {
        let db = &db;
        async move {
            db.execute(
                "INSERT INTO outbox (id, source, type, subject, aggregate, data)
                 VALUES (gen_random_uuid(), '/test', $1, 'n1', $2, '{}')",
                &[&ty, &aggregate],
            )
            .await
            .unwrap();
        }
    };
    insert("noise.made", "noise").await;
    let first = emit(&db, "p1", "probe.step", json!({})).await;
    let manifest = crate::common::root().join("bridge/tests/probe/spin.toml");
    let invoker = Invoker::Embedded(app.running.as_ref().unwrap().host.clone());
    let running = transport.start(&app, &manifest, invoker, None, fast());
    let delivered = |id: uuid::Uuid| {
        let db = &db;
        async move {
            count(
                db,
                &format!("SELECT count(*) FROM probe_attempts WHERE event_id = '{id}'"),
            )
            .await
                >= 1
        }
    };
    eventually("the probe event", Duration::from_secs(30), || {
        delivered(first)
    })
    .await;

    // A probe type under an aggregate nobody published before.
    db.execute(
        "INSERT INTO outbox (id, source, type, subject, aggregate, data)
         VALUES ('6f9c1c3e-0000-4000-8000-000000000001', '/test', 'probe.late', 'l1', 'latecomers', '{}')",
        &[],
    )
    .await
    .unwrap();
    let late: uuid::Uuid = "6f9c1c3e-0000-4000-8000-000000000001".parse().unwrap();
    eventually(
        "the first event of a new aggregate",
        Duration::from_secs(30),
        || delivered(late),
    )
    .await;
    insert("noise.made", "noise").await;
    let recorded = count(&db, "SELECT count(*) FROM bridge_event_topics").await;
    assert_eq!(
        recorded, 3,
        "probe.step, probe.late and noise.made recorded"
    );

    // The broker's view: the group committed where it read.
    let committed = |topic: String| {
        let kafka = kafka.clone();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &kafka.brokers)
                .set("group.id", kafka.group("probe"))
                .create()
                .unwrap();
            let mut partitions = TopicPartitionList::new();
            for p in 0..kafka.partitions {
                partitions.add_partition(&topic, p);
            }
            consumer
                .committed_offsets(partitions, Duration::from_secs(10))
                .unwrap()
                .elements()
                .iter()
                .filter(|e| e.offset().to_raw().is_some_and(|o| o >= 0))
                .count()
        })
    };
    let probes = format!("{}probes", kafka.topic_prefix);
    let noise = format!("{}noise", kafka.topic_prefix);
    let mut committed_probes = 0;
    for _ in 0..100 {
        committed_probes = committed(probes.clone()).await.unwrap();
        if committed_probes > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        committed_probes > 0,
        "the group commits on the topic it reads"
    );
    assert_eq!(
        committed(noise.clone()).await.unwrap(),
        0,
        "the group never read {noise}"
    );
    let log = logs.text();
    let reads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Kafka consumer reads"))
        .collect();
    assert!(
        reads
            .iter()
            .any(|l| l.contains(&probes) && l.contains("latecomers")),
        "the group followed the new aggregate:\n{log}"
    );
    assert!(!reads.iter().any(|l| l.contains(&noise)), "{log}");
    running.stop().await;
}
