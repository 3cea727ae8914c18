//! The RabbitMQ event path against the real broker: outbox → relay →
//! topic exchange → a queue per subscription → the probe subscriber.
//! Each test uses its own exchange and queue names and deletes them.

#[path = "../common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bridge::app::BrokerConfig;
use bridge::events::amqp::AmqpConfig;
use bridge::events::dispatch::DispatchConfig;
use bridge::events::invoke::Invoker;
use lapin::options::{BasicGetOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::types::AMQPValue;
use lapin::{Connection, ConnectionProperties};
use serde_json::json;
use tokio::sync::watch;

use common::subscriber::{count, delivered_ids, emit, eventually, fast, probe_app};
use common::{PG_SERVER, root};

fn amqp_config() -> AmqpConfig {
    let id = uuid::Uuid::new_v4().simple().to_string();
    AmqpConfig {
        exchange: format!("spinmesh.test.{id}.events"),
        dead_letter_exchange: format!("spinmesh.test.{id}.dlx"),
        queue_prefix: format!("spinmesh.test.{id}."),
        ..AmqpConfig::default()
    }
}

async fn cleanup(config: &AmqpConfig) {
    let Ok(conn) = Connection::connect(&config.url, ConnectionProperties::default()).await else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    for q in [config.queue("probe"), config.dead_letter_queue("probe")] {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for x in [&config.exchange, &config.dead_letter_exchange] {
        let _ = ch
            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
}

#[tokio::test]
async fn events_flow_through_rabbitmq_once_and_in_order_per_subject() {
    let config = amqp_config();
    let (_app, db) = probe_app(Some(fast()), BrokerConfig::Amqp(config.clone())).await;
    let mut expected = HashSet::new();
    for seq in 0..10 {
        for subject in ["a", "b", "c"] {
            expected.insert(emit(&db, subject, "probe.step", json!({"seq": seq})).await);
        }
    }
    eventually("30 deliveries", Duration::from_secs(30), || async {
        count(&db, "SELECT count(*) FROM probe_attempts").await >= 30
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = db
        .query(
            "SELECT event_id, subject, seq, signed FROM probe_attempts ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 30, "each delivered once");
    assert_eq!(
        rows.iter()
            .map(|r| r.get::<_, uuid::Uuid>(0))
            .collect::<HashSet<_>>(),
        expected
    );
    let mut last: HashMap<String, i64> = HashMap::new();
    for row in &rows {
        let (subject, seq): (String, i64) = (row.get(1), row.get(2));
        assert!(row.get::<_, bool>(3), "signed");
        if let Some(prev) = last.insert(subject.clone(), seq) {
            assert!(seq > prev, "subject {subject}: {seq} after {prev}");
        }
    }
    cleanup(&config).await;
}

#[tokio::test]
async fn retries_and_dead_letters_go_through_the_dlx() {
    let config = amqp_config();
    let (_app, db) = probe_app(Some(fast()), BrokerConfig::Amqp(config.clone())).await;
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
    let after = emit(&db, "s2", "probe.step", json!({"seq": 2})).await;
    eventually("the event after the refused one", Duration::from_secs(30), || async {
        count(&db, &format!("SELECT count(*) FROM probe_attempts WHERE event_id = '{after}' AND outcome = 'delivered'")).await == 1
    })
    .await;
    eventually("the flaky event", Duration::from_secs(30), || async {
        count(&db, &format!("SELECT count(*) FROM probe_attempts WHERE event_id = '{flaky}' AND outcome = 'delivered'")).await == 1
    })
    .await;
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM probe_attempts WHERE event_id = '{flaky}'")
        )
        .await,
        3
    );

    let conn = Connection::connect(&config.url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut dead = None;
    for _ in 0..100 {
        if let Some(msg) = ch
            .basic_get(
                config.dead_letter_queue("probe").as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            dead = Some(msg);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = dead.expect("a message in the dead-letter queue");
    let headers = dead.delivery.properties.headers().clone().unwrap();
    let text = |k: &str| match headers.inner().get(k) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("header {k}: {other:?}"),
    };
    assert_eq!(text("ce-id"), refused.to_string());
    assert_eq!(text("x-spinmesh-status"), "400");
    assert_eq!(text("x-spinmesh-attempts"), "1");
    assert!(text("x-spinmesh-error").contains("rejected on purpose"));
    cleanup(&config).await;
}

#[tokio::test]
async fn killing_relay_and_consumers_mid_stream_loses_nothing() {
    let config = amqp_config();
    let (app, db) = probe_app(None, BrokerConfig::Embedded).await;
    let mut expected = HashSet::new();
    for seq in 0..80 {
        expected.insert(
            emit(
                &db,
                &format!("k{}", seq % 4),
                "probe.step",
                json!({"seq": seq, "behavior": "slow"}),
            )
            .await,
        );
    }
    let host = app.running.as_ref().unwrap().host.clone();
    let manifest =
        bridge::manifest::Manifest::load(&root().join("bridge/tests/probe/spin.toml")).unwrap();
    let start = || {
        let (subscriptions, signer) = bridge::app::event_wiring(&manifest, &host).unwrap();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(bridge::app::run_amqp(
            config.clone(),
            format!("{PG_SERVER}/{}", app.database),
            subscriptions,
            Invoker::Embedded(host.clone()),
            signer,
            DispatchConfig {
                batch_size: 8,
                concurrency: 2,
                ..fast()
            },
            rx,
        ));
        (tx, task)
    };
    let (tx1, first) = start();
    eventually("some progress", Duration::from_secs(30), || async {
        count(&db, "SELECT count(*) FROM probe_attempts").await >= 10
    })
    .await;
    first.abort();
    drop(tx1);
    let done = count(&db, "SELECT count(DISTINCT event_id) FROM probe_attempts").await;
    assert!(done < 80, "stopped mid-stream ({done} done)");
    // The broker redelivers what the dead consumer had not acknowledged.
    let (tx2, second) = start();
    eventually(
        "every event after the restart",
        Duration::from_secs(30),
        || async { count(&db, "SELECT count(DISTINCT event_id) FROM probe_attempts").await == 80 },
    )
    .await;
    assert_eq!(delivered_ids(&db).await, expected);
    tx2.send(true).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), second).await;
    cleanup(&config).await;
}
