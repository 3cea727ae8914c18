//! A dependency that is down is a 503 problem, never a 500 or a hang.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jwt_simple::prelude::*;
use serde_json::json;

use crate::common::{Options, TestApp};

#[tokio::test]
async fn database_unreachable_is_503() {
    let app = TestApp::spawn_with(Options::missing_database()).await;
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
    app.login("redis-down@example.com", "password123")
        .await
        .assert_problem(503, "login attempts cannot be counted: refuse");
    // A token the app itself would have issued (its own key, its claims).
    let user_id: uuid::Uuid = app
        .db()
        .await
        .query_one(
            "SELECT id FROM users WHERE email = 'redis-down@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let key = Ed25519KeyPair::from_bytes(&STANDARD.decode(&app.keys.private_key).unwrap()).unwrap();
    let claims = Claims::with_custom_claims(json!({"role": "user"}), Duration::from_mins(5))
        .with_issuer("spinmesh")
        .with_audience("spinmesh")
        .with_subject(user_id)
        .with_jwt_id(uuid::Uuid::new_v4().to_string());
    let token = key.sign(claims).unwrap();
    app.me(&token)
        .await
        .assert_problem(503, "denylist unavailable: refuse rather than guess");
}
