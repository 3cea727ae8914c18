//! `cargo bench -p bridge --bench mongo`: events per second from the
//! outbox into MongoDB through the tracking sink, per transport
//! (embedded, RabbitMQ, Kafka) and `batch` (1, 100, 1000), in one run;
//! the baseline is the same documents written straight to the same server
//! (same indexes) with `insert_many` of 1000, measured in the same run.
//!
//! Each case: a fresh database, the event path started with the sink as
//! its only subscription and one event through it, then the events
//! committed at once and timed from the commit until the sink has
//! reported them all stored (the event path's delivered counter; the
//! collection is counted once, after). Knobs: BENCH_BROKER (one
//! transport), BENCH_MONGO_EVENTS (default 30000; a tenth of it for
//! `batch` 1), SPINMESH_MONGO_URL (default the development server on
//! 127.0.0.1:27017). Needs Postgres, the chosen broker and a MongoDB.

use std::time::{Duration, Instant};

use bridge::app::BrokerConfig;
use bridge::database::Database;
use bridge::events::EventPath;
use bridge::events::amqp::AmqpConfig;
use bridge::events::dispatch::DispatchConfig;
use bridge::events::event::Signer;
use bridge::events::invoke::Invoker;
use bridge::events::sink::mongo::{MongoConfig, document, indexes};
use bridge::events::subscription::{Destination, Subscription, TypePattern};
use metrics_exporter_prometheus::PrometheusHandle;
use mongodb::bson::{Document, doc};
use tokio_postgres::NoTls;

#[path = "support/allocator.rs"]
mod allocator;
#[path = "support/brokers.rs"]
mod brokers;

use brokers::{broker_for, modes};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const DATABASE: &str = "spinmesh_bench_mongo";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mongo_url() -> String {
    std::env::var("SPINMESH_MONGO_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into())
}

/// A fresh, migrated database, and a client of it.
async fn fresh_database() -> (Database, tokio_postgres::Client) {
    let (admin, conn) = tokio_postgres::connect(&format!("{SERVER}/postgres"), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // One statement each: DROP DATABASE refuses to run in the implicit
    // transaction of a multi-statement batch.
    for sql in [
        format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
        format!("CREATE DATABASE {DATABASE}"),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
    let database = Database::new(
        &format!("{SERVER}/{DATABASE}?sslmode=disable"),
        &Default::default(),
    )
    .unwrap();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let migrations = bridge::migrate::read_dir(&root.join("migrations")).unwrap();
    bridge::migrate::run(&database, &migrations).await.unwrap();
    let (db, conn) = tokio_postgres::connect(&format!("{SERVER}/{DATABASE}"), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    (database, db)
}

/// Commits `n` events like `user.registered` on 1000 subjects, in one
/// transaction.
async fn commit_events(db: &tokio_postgres::Client, n: i64) {
    db.execute(
        "INSERT INTO outbox (id, source, type, subject, aggregate, data)
         SELECT gen_random_uuid(), '/auth', 'user.registered', 'user-' || (i % 1000), 'users',
                jsonb_build_object('version', 1, 'user_id', gen_random_uuid(),
                                   'email', 'user' || i || '@example.com', 'username', null,
                                   'revision', 1)
           FROM generate_series(1, $1::bigint) AS i",
        &[&n],
    )
    .await
    .unwrap();
}

fn sink(database: &str, batch: usize) -> Subscription {
    Subscription {
        name: "sink.tracking".into(),
        patterns: vec![TypePattern::All],
        destination: Destination::Mongo(MongoConfig {
            url: mongo_url(),
            database: database.into(),
            collection: "tracking".into(),
        }),
        max_attempts: 10,
        batch,
        tick: None,
    }
}

/// Events `subscription`'s sink has stored so far in this process, as
/// the event path's own `spinmesh_events_delivered_total` counts them.
fn delivered(metrics: &PrometheusHandle, subscription: &str) -> u64 {
    let series = format!(
        "{}{{subscription=\"{subscription}\"}} ",
        bridge::events::metrics::DELIVERED
    );
    metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// Events/s of one transport and batch size: from the commit of `n`
/// events until the sink has reported them all stored, on an event path
/// that is already running (one event through it first, so a Kafka
/// consumer group's join or a first connection is not in the figure).
async fn case(metrics: &PrometheusHandle, mode: &str, batch: usize, n: i64) -> f64 {
    let (database, db) = fresh_database().await;
    let mongo_db = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let client = mongodb::Client::with_uri_str(mongo_url()).await.unwrap();
    let collection = client
        .database(&mongo_db)
        .collection::<Document>("tracking");
    let broker = match broker_for(mode) {
        // Enough unacknowledged messages to fill batches of 1000.
        BrokerConfig::Amqp(config) => BrokerConfig::Amqp(AmqpConfig {
            prefetch: 2000,
            ..config
        }),
        other => other,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let config = DispatchConfig {
        concurrency: 32,
        ..DispatchConfig::default()
    };
    let subscription = sink(&mongo_db, batch);
    // Done when the sink has reported the events stored. Counting the
    // collection instead costs the development server a scan of it per
    // count (`estimated_document_count` included: 186 ms at 30k
    // documents), which took most of its time from the sink's writes.
    let name = subscription.name.clone();
    let stored = || delivered(metrics, &name);
    let wait_for = |target: u64, what: &'static str| async move {
        let started = Instant::now();
        while stored() < target {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "{mode} batch {batch}: {what} not stored in time"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let before = stored();
    let path = tokio::spawn(bridge::events::run(
        EventPath {
            broker: broker.clone(),
            database,
            subscriptions: vec![subscription],
            invoker: Invoker::http("http://127.0.0.1:9"),
            signer: Signer::new("unused"),
            config,
        },
        stopped,
    ));
    commit_events(&db, 1).await;
    wait_for(before + 1, "the first event").await;

    commit_events(&db, n).await;
    let started = Instant::now();
    wait_for(before + 1 + n as u64, "the events").await;
    let elapsed = started.elapsed();

    assert_eq!(
        collection.count_documents(doc! {}).await.unwrap(),
        1 + n as u64,
        "{mode} batch {batch}: the sink reported them stored"
    );
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(20), path).await;
    let _ = client.database(&mongo_db).drop().await;
    if let BrokerConfig::Amqp(config) = &broker {
        let _ = bridge::events::amqp::topology::delete(config, &["sink.tracking"]).await;
    }
    n as f64 / elapsed.as_secs_f64()
}

/// The server's ceiling: the same documents into a collection with the
/// same indexes, `insert_many` of 1000.
async fn direct(n: i64) -> f64 {
    let client = mongodb::Client::with_uri_str(mongo_url()).await.unwrap();
    let name = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let collection = client.database(&name).collection::<Document>("tracking");
    collection.create_indexes(indexes()).await.unwrap();
    let event = |i: i64| bridge::events::event::OutboxEvent {
        position: i,
        txid: "1".into(),
        id: uuid::Uuid::new_v4(),
        source: "/auth".into(),
        event_type: "user.registered".into(),
        subject: format!("user-{}", i % 1000),
        aggregate: "users".into(),
        time: "2026-12-03T10:00:00.000000Z".into(),
        dataschema: None,
        data: format!(
            r#"{{"email": "user{i}@example.com", "revision": 1, "user_id": "{}", "username": null, "version": 1}}"#,
            uuid::Uuid::new_v4()
        ),
        traceparent: None,
    };
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let docs: Vec<Document> = chunk
            .iter()
            .map(|&i| document(&event(i)).unwrap())
            .collect();
        collection.insert_many(docs).ordered(false).await.unwrap();
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    assert_eq!(collection.count_documents(doc! {}).await.unwrap(), n as u64);
    let _ = client.database(&name).drop().await;
    rate
}

fn main() {
    brokers::init_logs();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let events: i64 = env_or("BENCH_MONGO_EVENTS", 30_000);
    let metrics = bridge::telemetry::recorder().expect("the bench's metrics recorder");
    rt.block_on(async {
        println!("\nspinmesh MongoDB sink benchmark: 2 runtime threads, {}", mongo_url());
        let ceiling = direct(events).await;
        println!(
            "  baseline: insert_many of 1000 straight to the server   {ceiling:>8.0} events/s"
        );
        for mode in modes() {
            for batch in [1usize, 100, 1000] {
                let n = if batch == 1 { events / 10 } else { events };
                let rate = case(&metrics, mode, batch, n).await;
                println!(
                    "  {mode:<8} batch {batch:>4}: {n:>6} events   {rate:>8.0} events/s   {:>5.1} % of baseline",
                    100.0 * rate / ceiling
                );
            }
        }
    });
}
