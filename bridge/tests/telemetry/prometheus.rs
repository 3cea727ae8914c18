//! Metrics on the admin listener, scraped as Prometheus would:
//! what the host records per route and component, what the event path
//! records per subscription (in-process, over RabbitMQ, and from
//! `bridge relay`), and the outbox gauges the heartbeat samples.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use bridge::events::dispatch::DispatchConfig;
use bridge::events::invoke::Invoker;
use bridge::keys::JwtKeys;

use crate::common::metrics::{metrics_when, scrape};
use crate::common::process::{self, Bridge, Printed};
use crate::common::subscriber::{emit, fast, probe_app};
use crate::common::transport::Transport;
use crate::common::{Options, TestApp, drop_database_blocking, root};

const REQUESTS: &str = "spinmesh_http_requests_total";
const DURATION_COUNT: &str = "spinmesh_http_request_duration_seconds_count";
const INSTANTIATIONS: &str = "spinmesh_component_instantiations_total";
const TRAPS: &str = "spinmesh_component_traps_total";
const TIMEOUTS: &str = "spinmesh_component_timeouts_total";
const PUBLISHED: &str = "spinmesh_events_published_total";
const DELIVERED: &str = "spinmesh_events_delivered_total";
const RETRIED: &str = "spinmesh_event_retries_total";
const DEAD_LETTERED: &str = "spinmesh_events_dead_lettered_total";
const LATENCY_COUNT: &str = "spinmesh_event_delivery_latency_seconds_count";
const LAG: &str = "spinmesh_consumer_lag_events";
const BACKLOG: &str = "spinmesh_outbox_backlog_events";
const OLDEST: &str = "spinmesh_outbox_oldest_unpublished_age_seconds";

const PROBE: &[(&str, &str)] = &[("subscription", "probe")];

#[tokio::test]
async fn requests_instances_traps_and_timeouts_are_counted_per_route_and_component() {
    let app = TestApp::spawn_with(Options {
        manifest: root().join("bridge/tests/probe/spin.toml"),
        migrate: false,
        request_timeout: Duration::from_millis(500),
        max_memory_bytes: 64 << 20,
        extra_vars: BTreeMap::from([("secret_token".to_string(), "s3cret".to_string())]),
        ..Options::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.get("/probe/exact", None).await.status, 200);
    }
    app.get("/probe/loop", None)
        .await
        .assert_problem(500, "infinite loop");
    assert_eq!(app.get("/probe/alloc", None).await.status, 500);
    assert_eq!(
        app.send("DELETE", "/probe/echo", vec![], None).await.status,
        200
    );

    let m = app.metrics().await;
    let exact = [("route", "/probe/exact"), ("method", "GET")];
    assert_eq!(
        m.value(REQUESTS, &[exact[0], exact[1], ("status", "200")]),
        Some(3.0),
        "{}",
        m.text
    );
    assert_eq!(m.value(DURATION_COUNT, &exact), Some(3.0), "{}", m.text);
    let wildcard = [
        ("route", "/probe/..."),
        ("method", "GET"),
        ("status", "500"),
    ];
    assert_eq!(m.value(REQUESTS, &wildcard), Some(2.0), "{}", m.text);
    let delete = [("route", "/probe/..."), ("method", "DELETE")];
    assert_eq!(m.value(REQUESTS, &delete), Some(1.0), "{}", m.text);
    let probe = [("component", "probe")];
    assert_eq!(m.value(INSTANTIATIONS, &probe), Some(6.0), "{}", m.text);
    assert_eq!(m.value(TIMEOUTS, &probe), Some(1.0), "{}", m.text);
    assert_eq!(m.value(TRAPS, &probe), Some(1.0), "{}", m.text);
    assert!(
        m.text
            .contains("# HELP spinmesh_http_requests_total HTTP requests answered"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("spinmesh_http_request_duration_seconds_bucket{route=\"/probe/exact\",method=\"GET\",le=\"0.5\"}"),
        "buckets, not a summary: {}",
        m.text
    );

    // The admin listener serves nothing else.
    let other = reqwest::get(format!("http://{}/", app.admin.unwrap()))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let post = reqwest::Client::new()
        .post(app.metrics_url())
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
}

/// Without a broker: deliveries, retries, dead letters and latency per
/// subscription, and the lag the heartbeat samples behind a subscription
/// held up by retries, back to zero once they succeed.
#[tokio::test]
async fn event_flow_retries_dead_letters_and_lag_show_per_subscription() {
    // Backoff long enough that the held-up lane spans a heartbeat.
    let config = DispatchConfig {
        backoff_base: Duration::from_secs(6),
        backoff_max: Duration::from_secs(6),
        ..fast()
    };
    let (app, db) = probe_app(Some(config), Default::default()).await;
    emit(
        &db,
        "held",
        "probe.step",
        json!({"seq": 1, "behavior": "fail-twice"}),
    )
    .await;
    for seq in 2..=4 {
        emit(&db, "held", "probe.step", json!({"seq": seq})).await;
    }
    let url = app.metrics_url();
    let held = metrics_when(&url, "the held-up subscription's lag", |m| {
        m.value(LAG, PROBE) == Some(4.0)
    })
    .await;
    assert_eq!(held.value(BACKLOG, &[]), Some(4.0), "{}", held.text);
    assert!(held.count(OLDEST, &[]) > 0.0, "{}", held.text);
    assert_eq!(held.count(DELIVERED, PROBE), 0.0, "{}", held.text);

    emit(
        &db,
        "refused",
        "probe.step",
        json!({"seq": 1, "behavior": "reject"}),
    )
    .await;
    let done = metrics_when(&url, "every event settled and sampled", |m| {
        m.count(DELIVERED, PROBE) == 4.0
            && m.count(DEAD_LETTERED, PROBE) == 1.0
            && m.value(LAG, PROBE) == Some(0.0)
    })
    .await;
    assert_eq!(done.count(RETRIED, PROBE), 2.0, "{}", done.text);
    assert_eq!(done.value(LATENCY_COUNT, PROBE), Some(4.0), "{}", done.text);
    assert_eq!(done.value(BACKLOG, &[]), Some(0.0), "{}", done.text);
    assert_eq!(done.value(OLDEST, &[]), Some(0.0), "{}", done.text);
}

/// Through RabbitMQ: what the relay published, what the consumer
/// delivered, and the queue's depth as the subscription's lag.
#[tokio::test]
async fn amqp_publishes_deliveries_and_queue_depth_show() {
    let (app, db) = probe_app(None, Default::default()).await;
    let transport = Transport::amqp();
    let invoker = Invoker::Embedded(app.running.as_ref().unwrap().host.clone());
    let runner = transport.start(
        &app,
        &root().join("bridge/tests/probe/spin.toml"),
        invoker,
        None,
        fast(),
    );
    for seq in 1..=5 {
        emit(&db, "amqp", "probe.step", json!({"seq": seq})).await;
    }
    let m = metrics_when(&app.metrics_url(), "five events through RabbitMQ", |m| {
        m.count(PUBLISHED, &[("broker", "amqp")]) == 5.0
            && m.count(DELIVERED, PROBE) == 5.0
            && m.value(LAG, PROBE) == Some(0.0)
            && m.value(BACKLOG, &[]) == Some(0.0)
    })
    .await;
    assert_eq!(m.value(LATENCY_COUNT, PROBE), Some(5.0), "{}", m.text);
    runner.stop().await;
}

/// The processes an operator runs: `bridge up` and `bridge relay` serve
/// their metrics on `--admin-listen`.
#[tokio::test]
async fn bridge_up_and_bridge_relay_serve_metrics_on_the_admin_listener() {
    let database = format!("spinmesh_test_{}", uuid::Uuid::new_v4().simple());
    let keys = JwtKeys::generate();
    let up = Bridge::start(&database, &keys, &[("SPINMESH_BROKER", "none")]).await;
    let registered = reqwest::Client::new()
        .post(format!("{}/auth/register", up.base))
        .json(&json!({"email": "metrics@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let m = scrape(&up.metrics).await;
    assert_eq!(
        m.value(
            REQUESTS,
            &[
                ("route", "/auth/..."),
                ("method", "POST"),
                ("status", "201")
            ]
        ),
        Some(1.0),
        "{}",
        m.text
    );

    // The relay delivers the registration's event to the functions `up`
    // serves, and counts it.
    let mut relay = process::command(&database, &keys)
        .args(["relay", "--target", &up.base, "--broker", "embedded"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(["--log-format", "json"])
        .env("SPINMESH_LOG", "warn,spinmesh_events=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the bridge binary runs");
    let mut log = BufReader::new(relay.stderr.take().unwrap()).lines();
    let url = Printed::collect(relay.stdout.take().unwrap())
        .after("Metrics at ")
        .await;
    crate::common::subscriber::eventually(
        "bridge relay's admin listener answers",
        Duration::from_secs(60),
        || async { reqwest::get(&url).await.is_ok() },
    )
    .await;
    let relayed = metrics_when(&url, "the registration delivered by the relay", |m| {
        m.count(DELIVERED, &[("subscription", "posts")]) == 1.0
            && m.value(LAG, &[("subscription", "posts")]) == Some(0.0)
    })
    .await;
    assert_eq!(
        relayed.value(REQUESTS, &[]),
        None,
        "the relay serves no routes"
    );

    // `--log-format json`: every line an object with its level and time.
    relay.start_kill().unwrap();
    let mut lines = Vec::new();
    while let Ok(Some(line)) = log.next_line().await {
        lines.push(line);
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""message":"delivered""#)
                && l.contains(r#""subscription":"posts""#)),
        "{lines:#?}"
    );
    for line in &lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            parsed["level"].is_string() && parsed["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(up.terminate().await.success());
    drop_database_blocking(&database);
}
