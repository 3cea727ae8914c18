//! `GET /health`: the whole system's state, 200 when usable and 503
//! naming the failing parts when not.

use std::time::Duration;

use bridge::events::dispatch::DispatchConfig;
use serde_json::Value;

use crate::common::proxy::Proxy;
use crate::common::subscriber::eventually;
use crate::common::{Options, Reply, TestApp, root};

fn with_events(extra_vars: &[(&str, &str)]) -> Options {
    Options {
        events: Some(DispatchConfig::default()),
        extra_vars: extra_vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        ..Options::default()
    }
}

/// The health answer once `wanted` holds (the bridge's first heartbeat,
/// its parts up).
async fn health_when(app: &TestApp, what: &str, wanted: impl Fn(&Reply) -> bool) -> Reply {
    let last = std::sync::Mutex::new(None);
    eventually(what, Duration::from_secs(30), || async {
        let r = app.get("/health", None).await;
        let done = wanted(&r);
        *last.lock().unwrap() = Some(r);
        done
    })
    .await;
    last.into_inner().unwrap().expect("at least one answer")
}

/// A 503 health answer: the same JSON shape as a healthy one, not a problem.
fn assert_unavailable(r: &Reply) {
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(r.json()["status"], "unavailable", "{}", r.text);
    assert!(r.headers.get("retry-after").is_some(), "{:?}", r.headers);
}

#[tokio::test]
async fn health_is_200_with_every_part_up_and_reports_the_event_path() {
    let app = TestApp::spawn_with(with_events(&[])).await;
    let r = health_when(&app, "a healthy system", |r| r.status == 200).await;
    assert_eq!(r.content_type(), "application/json");
    let body = r.json();
    assert_eq!(body["status"], "ok", "{body}");
    let checks = &body["checks"];
    for part in ["postgres", "redis", "broker", "outbox", "dead_letters"] {
        assert_eq!(checks[part]["status"], "up", "{part}: {body}");
    }
    assert_eq!(checks["broker"]["kind"], "embedded");
    assert_eq!(checks["broker"]["bridges"], 1);
    assert_eq!(checks["broker"]["failing"], Value::Array(vec![]));
    assert!(checks["outbox"]["backlog"].is_i64(), "{body}");
    assert_eq!(checks["dead_letters"]["waiting"], 0);

    // A dead letter waiting is reported (not judged).
    app.db()
        .await
        .execute(
            "INSERT INTO bridge_dead_letters (subscription, event_id, type, attempts, error, headers, data)
             VALUES ('orders', gen_random_uuid(), 'order.created', 5, 'boom', '{}', '{}')",
            &[],
        )
        .await
        .unwrap();
    let r = app.get("/health", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["checks"]["dead_letters"]["waiting"], 1);
}

#[tokio::test]
async fn without_a_bridge_reporting_health_is_503_and_shows_the_backlog() {
    // Events off: nothing moves the outbox and no heartbeat is written.
    let app = TestApp::spawn().await;
    let (_, _) = app.signed_in_user().await; // user.registered and user.logged_in
    let r = app.get("/health", None).await;
    assert_unavailable(&r);
    let checks = &r.json()["checks"];
    assert_eq!(checks["postgres"]["status"], "up");
    assert_eq!(checks["redis"]["status"], "up");
    assert_eq!(checks["broker"]["status"], "down", "{checks}");
    assert!(
        checks["broker"]["reason"]
            .as_str()
            .unwrap()
            .contains("no bridge")
    );
    assert!(
        checks["outbox"]["backlog"].as_i64().unwrap() >= 2,
        "{checks}"
    );
    assert!(
        checks["outbox"]["oldest_unpublished_age_seconds"]
            .as_f64()
            .unwrap()
            >= 0.0,
        "{checks}"
    );
}

#[tokio::test]
async fn health_is_503_naming_redis_when_redis_is_down() {
    // Redis refuses database 99999: every connection the functions open fails.
    let app = TestApp::spawn_with(with_events(&[(
        "redis_url",
        "redis://127.0.0.1:6379/99999",
    )]))
    .await;
    let r = health_when(&app, "the bridge's heartbeat", |r| {
        r.json()["checks"]["broker"]["status"] == "up"
    })
    .await;
    assert_unavailable(&r);
    let checks = &r.json()["checks"];
    assert_eq!(checks["redis"]["status"], "down", "{checks}");
    assert_eq!(checks["postgres"]["status"], "up", "{checks}");
}

#[tokio::test]
async fn health_is_503_naming_postgres_when_postgres_is_down() {
    let app = TestApp::spawn_with(Options::missing_database()).await;
    let r = app.get("/health", None).await;
    assert_unavailable(&r);
    let checks = &r.json()["checks"];
    assert_eq!(checks["postgres"]["status"], "down", "{checks}");
    assert_eq!(checks["redis"]["status"], "up", "{checks}");
    for unknown in ["broker", "outbox", "dead_letters"] {
        assert_eq!(checks[unknown]["status"], "unknown", "{unknown}: {checks}");
    }
}

#[tokio::test]
async fn unknown_paths_are_a_rate_limited_404_problem() {
    let app = TestApp::spawn().await;
    for path in ["/nope", "/api/v2/things", "/"] {
        let r = app.get(path, None).await;
        r.assert_problem(404, path);
        assert!(
            r.headers.get("ratelimit").is_some(),
            "{path}: {:?}",
            r.headers
        );
    }
    let r = app.send("DELETE", "/health", vec![], None).await;
    r.assert_problem(405, "DELETE /health");
}

/// The app's manifest with its Postgres and Redis addresses moved to the
/// given loopback ports (allowed hosts and defaults alike), written to a
/// temporary directory with the components' paths made absolute.
fn manifest_through(pg_port: u16, redis_port: u16) -> std::path::PathBuf {
    let root = root();
    let text = std::fs::read_to_string(root.join("spin.toml"))
        .unwrap()
        .replace(
            "postgres://127.0.0.1:5432",
            &format!("postgres://127.0.0.1:{pg_port}"),
        )
        .replace(
            "redis://127.0.0.1:6379",
            &format!("redis://127.0.0.1:{redis_port}"),
        )
        .replace(
            "source = \"target/",
            &format!("source = \"{}/target/", root.display()),
        );
    let dir = std::env::temp_dir().join(format!(
        "spinmesh-manifest-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Postgres and Redis stopped and started again (behind proxies only this
/// app uses): `/health` turns 503 naming the one that is gone, and 200
/// again once it is back.
#[tokio::test]
async fn health_follows_postgres_and_redis_going_away_and_coming_back() {
    let pg = Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let redis = Proxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let app = TestApp::spawn_with(Options {
        manifest: manifest_through(pg.port, redis.port),
        pg_server: Some(format!("postgres://postgres@127.0.0.1:{}", pg.port)),
        ..with_events(&[])
    })
    .await;
    health_when(&app, "healthy through the proxies", |r| r.status == 200).await;

    redis.stop();
    let r = health_when(&app, "redis gone", |r| r.status == 503).await;
    let checks = &r.json()["checks"];
    assert_eq!(checks["redis"]["status"], "down", "{checks}");
    assert_eq!(checks["postgres"]["status"], "up", "{checks}");
    redis.resume().await;
    health_when(&app, "redis back", |r| r.status == 200).await;

    pg.stop();
    let r = health_when(&app, "postgres gone", |r| r.status == 503).await;
    let checks = &r.json()["checks"];
    assert_eq!(checks["postgres"]["status"], "down", "{checks}");
    assert_eq!(checks["redis"]["status"], "up", "{checks}");
    pg.resume().await;
    health_when(&app, "postgres back", |r| r.status == 200).await;
}
