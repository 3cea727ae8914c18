//! `cargo bench -p bridge --bench events`: the event path end to end
//! (outbox → [broker →] dispatcher → analytics function → Postgres), plus
//! the analytics HTTP routes at that volume.
//!
//! Knobs: BENCH_BROKER (embedded | amqp | kafka), BENCH_EVENTS (default
//! 100000), BENCH_SECONDS (5), BENCH_CONNECTIONS (32). Needs the
//! components built, Postgres, Redis, and the chosen broker.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bridge::app::{self, AppOptions, BrokerConfig};
use bridge::events::amqp::AmqpConfig;
use bridge::events::dispatch::DispatchConfig;
use bridge::events::kafka::KafkaConfig;
use bridge::host::HostConfig;
use bridge::keys::JwtKeys;
use serde_json::json;
use tokio_postgres::NoTls;

#[path = "support/load.rs"]
mod load;

use load::{RequestSpec, load, row};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const DATABASE: &str = "spinmesh_bench_events";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn processed(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT sum(count)::bigint FROM analytics_totals", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(0)
}

async fn wait_for(db: &tokio_postgres::Client, target: i64, limit: Duration) -> Duration {
    let started = Instant::now();
    while processed(db).await < target {
        assert!(
            started.elapsed() < limit,
            "events not processed within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

fn main() {
    let events: i64 = env_or("BENCH_EVENTS", 100_000);
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let conns: usize = env_or("BENCH_CONNECTIONS", 32);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let load_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // A fresh database each run.
    server_rt.block_on(async {
        let (admin, conn) = tokio_postgres::connect(&format!("{SERVER}/postgres"), NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
            .await
            .unwrap();
    });
    let keys = JwtKeys::generate();
    // BENCH_BROKER=amqp|kafka runs the same through a broker (relay +
    // consumers), on names of this run's own.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let broker = match std::env::var("BENCH_BROKER").as_deref() {
        Ok("amqp") => BrokerConfig::Amqp(AmqpConfig {
            exchange: format!("spinmesh.bench.{run}.events"),
            dead_letter_exchange: format!("spinmesh.bench.{run}.dlx"),
            queue_prefix: format!("spinmesh.bench.{run}."),
            ..AmqpConfig::default()
        }),
        Ok("kafka") => BrokerConfig::Kafka(KafkaConfig {
            brokers: std::env::var("SPINMESH_KAFKA_BROKERS")
                .unwrap_or_else(|_| "127.0.0.1:9092".to_string()),
            topic_prefix: format!("bench{}-", &run[..12]),
            group_prefix: format!("bench{}.", &run[..12]),
            session_timeout: Duration::from_secs(3),
            metadata_refresh: Duration::from_millis(500),
            ..KafkaConfig::default()
        }),
        _ => BrokerConfig::Embedded,
    };
    let mode = match &broker {
        BrokerConfig::Embedded => "embedded mode, no broker",
        BrokerConfig::Amqp(_) => "RabbitMQ mode",
        BrokerConfig::Kafka(_) => "Kafka mode",
    };
    let running = server_rt
        .block_on(app::start(AppOptions {
            manifest: root().join("spin.toml"),
            listen: "127.0.0.1:0".parse().unwrap(),
            migrations: Some(root().join("migrations")),
            host: HostConfig {
                variable_overrides: [
                    (
                        "database_url".to_string(),
                        format!("{SERVER}/{DATABASE}?sslmode=disable"),
                    ),
                    ("jwt_private_key".to_string(), keys.private_key.clone()),
                    ("jwt_public_key".to_string(), keys.public_key.clone()),
                    (
                        "bridge_signing_secret".to_string(),
                        "bench-secret".to_string(),
                    ),
                ]
                .into(),
                ..HostConfig::default()
            },
            events: Some(DispatchConfig::default()),
            broker: broker.clone(),
        }))
        .expect("host starts");
    let addr = running.addr;
    let db = server_rt.block_on(async {
        let (db, conn) = tokio_postgres::connect(&format!("{SERVER}/{DATABASE}"), NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        db
    });

    println!("spinmesh event benchmark ({mode}): {events} events, 2 server threads");

    // 1. Throughput: a backlog committed at once, drained by the dispatcher.
    let drain = server_rt.block_on(async {
        db.execute(
            "INSERT INTO outbox (id, source, type, subject, aggregate, data)
             SELECT gen_random_uuid(), '/bench', 'bench.tick', 'u' || (i % 1000), 'bench',
                    jsonb_build_object('version', 1, 'user_id', 'u' || (i % 1000))
               FROM generate_series(1, $1::bigint) AS i",
            &[&events],
        )
        .await
        .unwrap();
        wait_for(&db, events, Duration::from_secs(600)).await
    });
    println!(
        "backlog of {events}: drained in {:.2} s = {:.0} events/s end to end   (target >= 10000/s embedded and RabbitMQ, >= 20000/s Kafka)",
        drain.as_secs_f64(),
        events as f64 / drain.as_secs_f64()
    );

    // 2. Latency at a steady 1000 events/s: 10 events every 10 ms.
    let steady = (seconds * 1000) as i64;
    server_rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for _ in 0..steady / 10 {
            tick.tick().await;
            db.execute(
                "INSERT INTO outbox (id, source, type, subject, aggregate, data)
                 SELECT gen_random_uuid(), '/bench', 'bench.steady', 's' || i, 'bench',
                        jsonb_build_object('version', 1, 'user_id', 's' || i)
                   FROM generate_series(1, 10) AS i",
                &[],
            )
            .await
            .unwrap();
        }
        wait_for(&db, events + steady, Duration::from_secs(120)).await;
        let row = db
            .query_one(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
                        percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
                   FROM (SELECT (extract(epoch FROM a.recorded_at - o.time) * 1000)::float8 AS ms
                           FROM analytics_events a JOIN outbox o ON o.id = a.event_id
                          WHERE o.type = 'bench.steady') AS t",
                &[],
            )
            .await
            .unwrap();
        let (p50, p99, max): (f64, f64, f64) = (row.get(0), row.get(1), row.get(2));
        println!(
            "steady 1000 events/s for {seconds} s: commit → recorded p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms   (target p99 < 50 ms)"
        );
    });

    // 3. The analytics HTTP routes with that many events stored.
    let total = server_rt.block_on(processed(&db));
    let post = load_rt.block_on(load(
        addr,
        &RequestSpec::post_json(
            "/events",
            &json!({"user_id": 7, "action": "bench", "timestamp": "2026-01-01T00:00:00Z"}),
        ),
        conns,
        Duration::from_secs(seconds),
    ));
    row("POST /events (persisted)", &post);
    println!("  (target >= 8000 req/s)");
    let metrics = load_rt.block_on(load(
        addr,
        &RequestSpec::get("/metrics/actions", None),
        conns,
        Duration::from_secs(seconds),
    ));
    row(&format!("GET /metrics/actions @ {total} events"), &metrics);
    println!("  (target >= 10000 req/s at 100k events, constant in the event count)");
    drop(running);
    server_rt.block_on(async {
        match &broker {
            BrokerConfig::Amqp(config) => {
                let _ =
                    bridge::events::amqp::topology::delete(config, &["analytics", "notifications"])
                        .await;
            }
            // Kafka topics are left: see tests/common/transport.rs.
            BrokerConfig::Kafka(_) | BrokerConfig::Embedded => {}
        }
    });
}
