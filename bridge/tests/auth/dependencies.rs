//! A dependency that is down is a 503 problem, never a 500 or a hang.

use std::collections::BTreeMap;

use crate::common::{Options, TestApp, database_url};

#[tokio::test]
async fn database_unreachable_is_503() {
    let missing = database_url(&format!(
        "spinmesh_missing_{}",
        uuid::Uuid::new_v4().simple()
    ));
    let app = TestApp::spawn_with(Options {
        migrate: false,
        extra_vars: BTreeMap::from([("database_url".to_string(), missing)]),
        ..Options::default()
    })
    .await;
    app.register("down@example.com", "password123", None)
        .await
        .assert_problem(503, "register with the database gone");
    app.login("down@example.com", "password123")
        .await
        .assert_problem(503, "login with the database gone");
    app.get("/auth/health?deep=1", None)
        .await
        .assert_problem(503, "deep health check");
    let shallow = app.get("/auth/health", None).await;
    assert_eq!(shallow.status, 200, "liveness does not depend on Postgres");
}

#[tokio::test]
async fn redis_unreachable_fails_closed_for_authenticated_routes() {
    // A declared host whose connection cannot be set up: Redis refuses
    // database 99999, so every open fails.
    let app = TestApp::spawn_with(Options {
        extra_vars: BTreeMap::from([(
            "redis_url".to_string(),
            "redis://127.0.0.1:6379/99999".to_string(),
        )]),
        ..Options::default()
    })
    .await;
    let r = app
        .register("redis-down@example.com", "password123", None)
        .await;
    assert_eq!(r.status, 201, "registration needs no Redis: {}", r.text);
    let login = app.login("redis-down@example.com", "password123").await;
    assert_eq!(login.status, 200, "{}", login.text);
    let token = login.json()["access_token"].as_str().unwrap().to_string();
    app.me(&token)
        .await
        .assert_problem(503, "denylist unavailable: refuse rather than guess");
}
