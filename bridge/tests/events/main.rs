//! The embedded event path: outbox rows → the dispatcher → the probe
//! subscriber, against the real Postgres, through the real host.

#[path = "../common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bridge::events::dispatch::DispatchConfig;
use bridge::events::embedded::EmbeddedDispatcher;
use bridge::events::invoke::Invoker;
use serde_json::json;
use tokio::sync::watch;
use tokio_postgres::NoTls;

use common::subscriber::{count, delivered_ids, emit, eventually, fast, probe_app};
use common::{PG_SERVER, TestApp, root};

/// Starts a dispatcher for the probe app by hand, so a test can kill it.
fn start_dispatcher(app: &TestApp, config: DispatchConfig) -> tokio::task::JoinHandle<()> {
    let host = app.running.as_ref().unwrap().host.clone();
    let manifest =
        bridge::manifest::Manifest::load(&root().join("bridge/tests/probe/spin.toml")).unwrap();
    let (subscriptions, signer) = bridge::app::event_wiring(&manifest, &host).unwrap();
    let dispatcher = EmbeddedDispatcher {
        database_url: format!("{PG_SERVER}/{}", app.database),
        subscriptions,
        invoker: Invoker::Embedded(host),
        signer,
        config,
    };
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let _keep = tx;
        dispatcher.run(rx).await;
    })
}

#[tokio::test]
async fn every_event_is_delivered_signed_and_in_order_per_subject() {
    let (_app, db) = probe_app(Some(fast()), Default::default()).await;
    let mut expected = HashSet::new();
    for seq in 0..10 {
        for subject in ["a", "b", "c", "d", "e"] {
            expected.insert(emit(&db, subject, "probe.step", json!({"seq": seq})).await);
        }
    }
    emit(&db, "a", "other.ignored", json!({"seq": 99})).await;
    eventually("50 deliveries", Duration::from_secs(20), || async {
        count(&db, "SELECT count(*) FROM probe_attempts").await >= 50
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let rows = db
        .query(
            "SELECT event_id, subject, seq, outcome, signed FROM probe_attempts ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        50,
        "each delivered once, the unsubscribed type never"
    );
    let delivered: HashSet<uuid::Uuid> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(delivered, expected);
    let mut last: HashMap<String, i64> = HashMap::new();
    for row in &rows {
        let (subject, seq): (String, i64) = (row.get(1), row.get(2));
        assert!(row.get::<_, bool>(4), "deliveries carry a signature");
        if let Some(prev) = last.insert(subject.clone(), seq) {
            assert!(seq > prev, "subject {subject}: {seq} after {prev}");
        }
    }
}

#[tokio::test]
async fn a_failing_subscriber_is_retried_and_a_refusal_is_dead_lettered() {
    let (app, db) = probe_app(Some(fast()), Default::default()).await;
    let flaky = emit(
        &db,
        "s1",
        "probe.step",
        json!({"seq": 1, "behavior": "fail-twice"}),
    )
    .await;
    let refused = emit(
        &db,
        "s2",
        "probe.step",
        json!({"seq": 1, "behavior": "reject"}),
    )
    .await;
    let hopeless = emit(
        &db,
        "s3",
        "probe.step",
        json!({"seq": 1, "behavior": "fail-always"}),
    )
    .await;
    let after = emit(&db, "s2", "probe.step", json!({"seq": 2})).await;

    eventually("the later event on the refused subject", Duration::from_secs(20), || async {
        count(&db, &format!("SELECT count(*) FROM probe_attempts WHERE event_id = '{after}' AND outcome = 'delivered'")).await == 1
    })
    .await;
    eventually("two dead letters", Duration::from_secs(20), || async {
        count(&db, "SELECT count(*) FROM bridge_dead_letters").await == 2
    })
    .await;

    let outcomes: Vec<String> = db
        .query(
            "SELECT outcome FROM probe_attempts WHERE event_id = $1 ORDER BY id",
            &[&flaky],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        outcomes,
        ["failed", "failed", "delivered"],
        "retried, delivered once"
    );

    let dead = db
        .query(
            "SELECT event_id, attempts, status, error, headers->>'ce-id', subscription
               FROM bridge_dead_letters ORDER BY event_id = $1 DESC",
            &[&refused],
        )
        .await
        .unwrap();
    let by_id: HashMap<uuid::Uuid, &tokio_postgres::Row> =
        dead.iter().map(|r| (r.get(0), r)).collect();
    let r = by_id[&refused];
    assert_eq!(r.get::<_, i32>(1), 1, "a 400 is not retried");
    assert_eq!(r.get::<_, Option<i32>>(2), Some(400));
    assert!(r.get::<_, String>(3).contains("rejected on purpose"));
    assert_eq!(
        r.get::<_, String>(4),
        refused.to_string(),
        "original headers kept"
    );
    assert_eq!(r.get::<_, String>(5), "probe");
    let h = by_id[&hopeless];
    assert_eq!(h.get::<_, i32>(1), 3, "max_attempts from spin.toml");
    assert_eq!(h.get::<_, Option<i32>>(2), Some(503));
    drop(app);
}

#[tokio::test]
async fn a_late_committing_transaction_is_not_skipped() {
    let (app, db) = probe_app(None, Default::default()).await;
    let (mut slow, conn) = tokio_postgres::connect(&format!("{PG_SERVER}/{}", app.database), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
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
    let dispatcher = start_dispatcher(&app, fast());
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
    dispatcher.abort();
}

#[tokio::test]
async fn a_dispatcher_killed_mid_stream_loses_nothing_after_restart() {
    let (app, db) = probe_app(None, Default::default()).await;
    let mut expected = HashSet::new();
    for seq in 0..120 {
        let subject = format!("k{}", seq % 4);
        expected.insert(
            emit(
                &db,
                &subject,
                "probe.step",
                json!({"seq": seq, "behavior": "slow"}),
            )
            .await,
        );
    }
    let config = DispatchConfig {
        batch_size: 16,
        concurrency: 4,
        ..fast()
    };
    let first = start_dispatcher(&app, config.clone());
    eventually("some progress", Duration::from_secs(20), || async {
        count(&db, "SELECT count(*) FROM probe_attempts").await >= 10
    })
    .await;
    first.abort();
    let _ = first.await;
    let before_restart = count(&db, "SELECT count(DISTINCT event_id) FROM probe_attempts").await;
    assert!(
        before_restart < 120,
        "stopped mid-stream ({before_restart} done)"
    );

    let second = start_dispatcher(&app, config);
    eventually(
        "every event after the restart",
        Duration::from_secs(60),
        || async { count(&db, "SELECT count(DISTINCT event_id) FROM probe_attempts").await == 120 },
    )
    .await;
    assert_eq!(delivered_ids(&db).await, expected);
    // At-least-once: only the batch in flight at the kill may repeat.
    let total = count(&db, "SELECT count(*) FROM probe_attempts").await;
    assert!(
        total - 120 <= 16,
        "{} redeliveries, more than one batch",
        total - 120
    );
    second.abort();
}

#[tokio::test]
async fn the_http_invoker_delivers_to_a_running_host() {
    let (app, db) = probe_app(None, Default::default()).await;
    let host = app.running.as_ref().unwrap().host.clone();
    let manifest =
        bridge::manifest::Manifest::load(&root().join("bridge/tests/probe/spin.toml")).unwrap();
    let (subscriptions, signer) = bridge::app::event_wiring(&manifest, &host).unwrap();
    let dispatcher = EmbeddedDispatcher {
        database_url: format!("{PG_SERVER}/{}", app.database),
        subscriptions,
        // Over the network, as `bridge relay --target` does against `spin up`.
        invoker: Invoker::http(&app.base),
        signer,
        config: fast(),
    };
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(dispatcher.run(rx));
    let id = emit(
        &db,
        "h",
        "probe.step",
        json!({"seq": 1, "behavior": "fail-twice"}),
    )
    .await;
    eventually("delivery over HTTP", Duration::from_secs(20), || async {
        count(&db, &format!("SELECT count(*) FROM probe_attempts WHERE event_id = '{id}' AND outcome = 'delivered'")).await == 1
    })
    .await;
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM probe_attempts WHERE event_id = '{id}' AND signed")
        )
        .await,
        3,
        "two retried failures and a delivery, all signed"
    );
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the dispatcher stops on shutdown")
        .unwrap();
}
