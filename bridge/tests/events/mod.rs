//! The embedded event path (no broker): each subscription reads the
//! outbox through its own cursor, against the real Postgres, through the
//! real host. The shared scenarios run here as they do for RabbitMQ and
//! Kafka, plus what only the outbox reader can show.

use std::time::Duration;

use bridge::events::dispatch::DispatchConfig;
use bridge::events::invoke::Invoker;
use serde_json::json;

use crate::common::root;
use crate::common::scenarios;
use crate::common::subscriber::{attempts_in_order, count, emit, eventually, fast, probe_app};
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
    assert_eq!(attempts_in_order(&db).await, [early, late]);
    runner.stop().await;
}

/// The probe subscribes to `probe.*`: its reader asks the database for
/// those types only, and moves its durable cursor past the rows of other
/// types it skipped, also when none of its own follow them.
#[tokio::test]
async fn a_reader_skips_other_types_and_moves_past_them() {
    let (app, db) = probe_app(None, Default::default()).await;
    let noise = |n: i32| {
        let db = &db;
        async move {
            // Types a prefix match must not take for `probe.*`.
            db.execute(
                "INSERT INTO outbox (id, source, type, subject, aggregate, data)
                 SELECT gen_random_uuid(), '/test',
                        (ARRAY['other.noise', 'probe', 'probeXstep', 'probes.step'])[1 + i % 4],
                        'n' || i, 'probes', '{}'
                   FROM generate_series(1, $1::int) AS i",
                &[&n],
            )
            .await
            .unwrap();
        }
    };
    let mut wanted = Vec::new();
    for seq in 1..=3 {
        noise(250).await;
        wanted.push(emit(&db, "x", "probe.step", json!({ "seq": seq })).await);
    }
    noise(250).await;
    let invoker = Invoker::Embedded(app.running.as_ref().unwrap().host.clone());
    let manifest = root().join("bridge/tests/probe/spin.toml");
    let runner = Transport::Embedded.start(&app, &manifest, invoker, None, fast());
    eventually("the probe's events", Duration::from_secs(10), || async {
        count(&db, "SELECT count(*) FROM probe_attempts").await == 3
    })
    .await;
    assert_eq!(
        attempts_in_order(&db).await,
        wanted,
        "its own events, once each, in order"
    );
    eventually(
        "the cursor past the trailing rows of other types",
        Duration::from_secs(10),
        || async {
            count(
                &db,
                "SELECT count(*) FROM bridge_cursors c
                  WHERE c.subscription = 'probe'
                    AND (c.txid, c.position) = (SELECT txid, position FROM outbox
                                                 ORDER BY txid DESC, position DESC LIMIT 1)",
            )
            .await
                == 1
        },
    )
    .await;
    runner.stop().await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM probe_attempts").await,
        3,
        "no other type reached the probe"
    );
}

/// An event that has committed behind an older transaction which writes
/// no event (so its end wakes no one) is delivered once that transaction
/// ends, not at the next poll (ten minutes here).
#[tokio::test]
async fn an_event_held_behind_a_silent_transaction_goes_when_it_ends() {
    let config = DispatchConfig {
        poll_interval: Duration::from_secs(600),
        ..fast()
    };
    let (app, db) = probe_app(None, Default::default()).await;
    let invoker = Invoker::Embedded(app.running.as_ref().unwrap().host.clone());
    let manifest = root().join("bridge/tests/probe/spin.toml");
    let runner = Transport::Embedded.start(&app, &manifest, invoker, None, config);
    eventually("the reader's cursor", Duration::from_secs(10), || async {
        count(
            &db,
            "SELECT count(*) FROM bridge_cursors WHERE subscription = 'probe'",
        )
        .await
            == 1
    })
    .await;
    let mut silent = app.db().await;
    let tx = silent.transaction().await.unwrap();
    // An xid of its own: the horizon stays below it until it ends.
    tx.execute("SELECT txid_current()", &[]).await.unwrap();
    let id = emit(&db, "x", "probe.step", json!({"seq": 1})).await;
    // The event's NOTIFY wakes the reader, which finds it held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM probe_attempts").await,
        0,
        "nothing passes an open transaction's horizon"
    );
    tx.commit().await.unwrap();
    eventually(
        "the held event, well before the next poll",
        Duration::from_secs(5),
        || async { count(&db, "SELECT count(*) FROM probe_attempts").await == 1 },
    )
    .await;
    assert_eq!(attempts_in_order(&db).await, [id]);
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

/// A broker that confirms only when the test says so.
#[derive(Clone, Default)]
struct HeldBroker(std::sync::Arc<std::sync::Mutex<Held>>);

#[derive(Default)]
struct Held {
    /// Each batch sent: its events' ids.
    sent: Vec<Vec<uuid::Uuid>>,
    /// The confirmation of each batch sent, until released.
    confirm: Vec<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl HeldBroker {
    fn sent(&self) -> Vec<Vec<uuid::Uuid>> {
        self.0.lock().unwrap().sent.clone()
    }

    fn confirm(&self, batch: usize) {
        let sender = self.0.lock().unwrap().confirm[batch].take();
        sender.expect("confirmed once").send(()).unwrap();
    }
}

impl bridge::events::relay::Publish for HeldBroker {
    async fn send(
        &self,
        events: &[bridge::events::event::OutboxEvent],
    ) -> anyhow::Result<bridge::events::relay::Confirmation> {
        use futures::FutureExt;
        let (confirm, confirmed) = tokio::sync::oneshot::channel();
        let mut held = self.0.lock().unwrap();
        held.sent.push(events.iter().map(|e| e.id).collect());
        held.confirm.push(Some(confirm));
        Ok(async move { confirmed.await.map_err(anyhow::Error::from) }.boxed())
    }
}

/// The relay sends the next batches while the broker has not confirmed
/// the first, and moves its cursor only past batches confirmed together
/// with every batch before them: a crash with a batch unconfirmed
/// publishes it again, first.
#[tokio::test]
async fn the_relay_sends_ahead_and_moves_only_past_confirmed_batches() {
    use bridge::events::relay::OutboxRelay;

    let (app, db) = probe_app(None, Default::default()).await;
    let mut ids = Vec::new();
    for seq in 0..3 {
        ids.push(emit(&db, &format!("s{seq}"), "probe.step", json!({})).await);
    }
    let position_of = |id: uuid::Uuid| {
        let db = &db;
        async move {
            db.query_one("SELECT position FROM outbox WHERE id = $1", &[&id])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let cursor = || async {
        count(
            &db,
            "SELECT coalesce(max(position), 0) FROM bridge_cursors WHERE subscription = 'relay:held'",
        )
        .await
    };
    let relay = |broker: HeldBroker| {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let relay = OutboxRelay {
            database: crate::common::database(&app.database),
            name: "relay:held".into(),
            config: bridge::events::dispatch::DispatchConfig {
                batch_size: 1,
                ..fast()
            },
            local_writes: None,
        };
        let task =
            tokio::spawn(relay.run(move || std::future::ready(Ok(broker.clone())), shutdown));
        (stop, task)
    };

    let broker = HeldBroker::default();
    let (_stop, task) = relay(broker.clone());
    eventually(
        "three batches sent unconfirmed",
        Duration::from_secs(10),
        || async { broker.sent().len() == 3 },
    )
    .await;
    assert_eq!(
        broker.sent(),
        ids.iter().map(|id| vec![*id]).collect::<Vec<_>>()
    );
    assert_eq!(cursor().await, 0, "nothing is confirmed yet");

    // The second confirmed before the first: the cursor waits for the
    // first, then moves past both.
    broker.confirm(1);
    broker.confirm(0);
    let second = position_of(ids[1]).await;
    eventually(
        "the cursor past the second batch",
        Duration::from_secs(10),
        || async { cursor().await == second },
    )
    .await;

    // A crash with the third unconfirmed: the next relay sends it again.
    task.abort();
    let _ = task.await;
    assert_eq!(cursor().await, second);
    let again = HeldBroker::default();
    let (stop, task) = relay(again.clone());
    eventually(
        "the unconfirmed batch sent again",
        Duration::from_secs(10),
        || async { !again.sent().is_empty() },
    )
    .await;
    assert_eq!(again.sent(), vec![vec![ids[2]]]);
    again.confirm(0);
    let third = position_of(ids[2]).await;
    eventually(
        "the cursor past the third batch",
        Duration::from_secs(10),
        || async { cursor().await == third },
    )
    .await;
    stop.send(true).unwrap();
    task.await.unwrap();
}
