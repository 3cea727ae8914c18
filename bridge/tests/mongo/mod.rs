//! The MongoDB sink against a real MongoDB-wire server, in every
//! transport: events land as typed documents once however often they are
//! delivered, a server killed mid-stream loses and doubles nothing, and a
//! document the server refuses is dead-lettered while later ones arrive.

use std::time::Duration;

use bridge::events::event::Signer;
use bridge::events::invoke::Invoker;
use bridge::events::subscription::Subscription;
use mongodb::bson::{self, Bson};
use serde_json::json;

use crate::common::mongo::{OwnServer, Tracking, shared_url};
use crate::common::subscriber::{emit, eventually, fast, probe_app};
use crate::common::transport::{Runner, Transport};
use crate::common::{Logs, TestApp};

/// Runs `scenario` once per transport, as `<scenario>::<transport>`.
macro_rules! in_every_transport {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use crate::common::transport::Transport;

            #[tokio::test]
            async fn embedded() {
                super::$scenario(Transport::Embedded).await;
            }

            #[tokio::test]
            async fn amqp() {
                super::$scenario(Transport::amqp()).await;
            }

            #[tokio::test]
            async fn kafka() {
                super::$scenario(Transport::kafka()).await;
            }
        }
    )*};
}

in_every_transport!(
    events_land_as_typed_documents_once,
    a_server_killed_mid_stream_loses_and_doubles_nothing,
    a_refused_document_is_dead_lettered_and_later_ones_arrive,
);

/// Moves `app`'s events to `subscription` alone.
fn start(transport: &Transport, app: &TestApp, subscription: Subscription) -> Runner {
    let invoker = Invoker::Embedded(app.running.as_ref().unwrap().host.clone());
    // Sinks are not signed; the signer is for functions.
    let signer = Signer::new("unused");
    transport.start_subscriptions(app, vec![subscription], invoker, signer, fast())
}

/// Writes `probe.step` events numbered `seqs`, on ten subjects; returns
/// their ids.
async fn emit_steps(db: &tokio_postgres::Client, seqs: std::ops::Range<i64>) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    for seq in seqs {
        let subject = format!("s{}", seq % 10);
        ids.push(emit(db, &subject, "probe.step", json!({ "seq": seq })).await);
    }
    ids
}

/// Registration (with its verification request) and login, through the
/// real auth function, become one document each: the CloudEvents attributes, `_id` the event id, `time` a
/// BSON date, `data` a sub-document with its JSON types. Delivered again
/// (as after a crash before acknowledging), they stay one document each.
async fn events_land_as_typed_documents_once(transport: Transport) {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let tracking = Tracking::new(&shared_url()).await;
    let runner = start(&transport, &app, tracking.subscription(&["user.*"], 100));
    let (email, _) = app.signed_in_user().await;
    tracking.wait_for(3, Duration::from_secs(30)).await;

    let outbox = db
        .query(
            "SELECT id::text, type, source, subject, aggregate,
                    floor(extract(epoch FROM time) * 1000)::bigint, data::text
               FROM outbox ORDER BY position",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        outbox.len(),
        3,
        "registration, its verification request and login"
    );
    let documents = tracking.documents().await;
    for row in &outbox {
        let id: String = row.get(0);
        let doc = documents
            .iter()
            .find(|d| d.get_str("_id") == Ok(id.as_str()))
            .unwrap_or_else(|| panic!("no document for event {id}: {documents:?}"));
        assert_eq!(doc.get_str("specversion"), Ok("1.0"));
        assert_eq!(doc.get_str("type"), Ok(row.get::<_, &str>(1)));
        assert_eq!(doc.get_str("source"), Ok(row.get::<_, &str>(2)));
        assert_eq!(doc.get_str("subject"), Ok(row.get::<_, &str>(3)));
        assert_eq!(doc.get_str("aggregate"), Ok(row.get::<_, &str>(4)));
        assert_eq!(doc.get_str("datacontenttype"), Ok("application/json"));
        let time = doc.get_datetime("time").expect("time is a BSON date");
        assert_eq!(time.timestamp_millis(), row.get::<_, i64>(5));
        let data = doc.get_document("data").expect("data is a sub-document");
        let json: serde_json::Value = serde_json::from_str(row.get(6)).unwrap();
        assert_eq!(Bson::Document(data.clone()), bson::to_bson(&json).unwrap());
    }
    let registered = documents
        .iter()
        .find(|d| d.get_str("type") == Ok("user.registered"))
        .unwrap()
        .get_document("data")
        .unwrap();
    assert_eq!(registered.get_str("email"), Ok(email.as_str()));
    assert_eq!(registered.get_i64("version"), Ok(1), "numbers stay Int64");
    assert_eq!(registered.get("username"), Some(&Bson::Null));

    // Everything again, then one more event on the same user: once it is
    // stored, the replayed ones before it (same subject) were handled.
    runner.stop().await;
    transport.replay(&db).await;
    let runner = start(&transport, &app, tracking.subscription(&["user.*"], 100));
    assert_eq!(app.login(&email, "correct horse battery").await.status, 200);
    tracking.wait_for(4, Duration::from_secs(30)).await;
    assert_eq!(
        tracking.documents().await.len(),
        4,
        "redelivered events counted once"
    );
    runner.stop().await;
}

/// The server is killed while events flow and started again: what could
/// not be stored meanwhile is retried, every event ends up stored exactly
/// once. (The development server does not make acknowledged writes
/// durable before a checkpoint, so the test checkpoints what was stored
/// before the kill; the stream then runs into the outage.)
async fn a_server_killed_mid_stream_loses_and_doubles_nothing(transport: Transport) {
    let logs = std::env::var_os("TEST_LOG")
        .is_none()
        .then(Logs::capture)
        .flatten();
    let (app, db) = probe_app(None, Default::default()).await;
    let mut server = OwnServer::start().await;
    let tracking = Tracking::new(&server.url()).await;
    let mut subscription = tracking.subscription(&["probe.*"], 50);
    // Outlast the outage rather than dead-letter through it.
    subscription.max_attempts = 50;
    let runner = start(&transport, &app, subscription);
    let mut ids = Vec::new();
    ids.extend(emit_steps(&db, 0..100).await);
    tracking.wait_for(100, Duration::from_secs(30)).await;
    server.fsync().await;
    server.kill();
    ids.extend(emit_steps(&db, 100..200).await);
    if let Some(logs) = &logs {
        eventually(
            "a failed write while the server is down",
            Duration::from_secs(30),
            || async { logs.text().contains("delivery failed; retrying") },
        )
        .await;
    }
    server.restart().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while tracking.count().await != Some(200) {
        if std::time::Instant::now() > deadline {
            let log = logs.as_ref().map(|l| l.text()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "{:?} of 200 stored a minute after the restart; last log lines:\n{}",
                tracking.count().await,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stored: Vec<String> = tracking
        .documents()
        .await
        .iter()
        .map(|d| d.get_str("_id").unwrap().to_string())
        .collect();
    let mut expected: Vec<String> = ids.iter().map(ToString::to_string).collect();
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected, "every event once");
    runner.stop().await;
}

/// A document the server refuses (here a validator; on a real server also
/// one over 16 MiB) is dead-lettered with the server's reason; the others
/// of its batch and later events are stored.
async fn a_refused_document_is_dead_lettered_and_later_ones_arrive(transport: Transport) {
    let (app, db) = probe_app(None, Default::default()).await;
    let tracking = Tracking::new(&shared_url()).await;
    tracking.refuse_poison().await;
    let runner = start(&transport, &app, tracking.subscription(&["probe.*"], 100));
    emit(&db, "a", "probe.step", json!({ "seq": 1 })).await;
    let poison = emit(&db, "a", "probe.step", json!({ "seq": 2, "poison": true })).await;
    emit(&db, "b", "probe.step", json!({ "seq": 3 })).await;
    tracking.wait_for(2, Duration::from_secs(30)).await;
    let dead = transport.dead_letters(&db, 1).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].event_id, poison.to_string());
    assert_eq!(dead[0].subscription, "sink.tracking");
    assert!(
        dead[0].error.contains("121"),
        "the server's reason: {dead:?}"
    );
    // The poisoned subject goes on.
    emit(&db, "a", "probe.step", json!({ "seq": 4 })).await;
    tracking.wait_for(3, Duration::from_secs(30)).await;
    runner.stop().await;
}
