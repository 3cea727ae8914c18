//! The delivery routes of the real functions, called directly the way the
//! bridge calls them: redelivery applies once, forgeries are refused, and
//! the tracking endpoints answer the older services' shapes. (The whole
//! path through each transport is in the `events`, `amqp` and `kafka`
//! suites.)

use std::collections::BTreeMap;
use std::time::Duration;

use bridge::events::dispatch::DispatchConfig;
use bridge::events::event::{SIGNATURE_HEADER, Signer, unix_now};
use serde_json::{Value, json};

use crate::common::{Options, Reply, TestApp};

const SECRET: &str = "pipeline-test-secret";

async fn app_with_events() -> TestApp {
    TestApp::spawn_with(Options {
        extra_vars: BTreeMap::from([("bridge_signing_secret".to_string(), SECRET.to_string())]),
        events: Some(DispatchConfig {
            backoff_base: Duration::from_millis(10),
            poll_interval: Duration::from_millis(200),
            ..DispatchConfig::default()
        }),
        ..Options::default()
    })
    .await
}

/// POSTs a CloudEvent to a delivery route the way the bridge does.
async fn deliver(
    app: &TestApp,
    route: &str,
    id: &str,
    ty: &str,
    subject: &str,
    data: &Value,
    signature: Option<String>,
) -> Reply {
    let body = data.to_string();
    let signature =
        signature.unwrap_or_else(|| Signer::new(SECRET).sign(unix_now(), id, body.as_bytes()));
    let resp = app
        .client
        .post(app.url(route))
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-type", ty)
        .header("ce-source", "/test")
        .header("ce-subject", subject)
        .header("ce-time", "2026-01-01T00:00:00Z")
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .unwrap();
    Reply::from(resp).await
}

#[tokio::test]
async fn a_redelivered_event_is_counted_once_and_forgeries_are_refused() {
    let app = app_with_events().await;
    let id = uuid::Uuid::new_v4().to_string();
    let data = json!({"version": 1, "user_id": "u-42"});
    for round in 0..2 {
        let r = deliver(
            &app,
            "/analytics/events",
            &id,
            "user.logged_in",
            "u-42",
            &data,
            None,
        )
        .await;
        assert_eq!(r.status, 200, "round {round}: {}", r.text);
    }
    let m = app.get("/metrics/user/u-42/actions", None).await.json();
    assert_eq!(m["actions"]["login"], 1, "counted once: {m}");

    let other = uuid::Uuid::new_v4().to_string();
    let forged =
        Signer::new("not-the-secret").sign(unix_now(), &other, data.to_string().as_bytes());
    deliver(
        &app,
        "/analytics/events",
        &other,
        "user.logged_in",
        "u-42",
        &data,
        Some(forged),
    )
    .await
    .assert_problem(401, "signed with another secret");
    let stale = Signer::new(SECRET).sign(unix_now() - 3600, &other, data.to_string().as_bytes());
    deliver(
        &app,
        "/analytics/events",
        &other,
        "user.logged_in",
        "u-42",
        &data,
        Some(stale),
    )
    .await
    .assert_problem(401, "an hour-old signature");
    let unsigned = app
        .client
        .post(app.url("/notifications/events"))
        .header("ce-specversion", "1.0")
        .header("ce-id", &other)
        .header("ce-type", "user.registered")
        .header("ce-source", "/test")
        .body(data.to_string())
        .send()
        .await
        .unwrap();
    Reply::from(unsigned).await.assert_problem(401, "unsigned");
    let m = app.get("/metrics/user/u-42/actions", None).await.json();
    assert_eq!(m["actions"]["login"], 1, "forgeries changed nothing: {m}");
}

#[tokio::test]
async fn tracking_endpoints_answer_the_old_service_shapes() {
    let app = app_with_events().await;
    for (i, action) in ["login", "login", "view"].iter().enumerate() {
        let r = app
            .post_json(
                "/events",
                &json!({"user_id": 7, "action": action, "timestamp": "2026-01-01T00:00:00Z"}),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let body = r.json();
        assert_eq!(body["status"], "event_recorded");
        assert!(body["total_events"].as_i64().unwrap() > i as i64);
    }
    let user = app.get("/metrics/user/7/actions", None).await.json();
    assert_eq!(
        user,
        json!({"user_id": "7", "actions": {"login": 2, "view": 1}})
    );
    let bad = [
        ("missing action", json!({"user_id": 7})),
        ("empty action", json!({"user_id": 7, "action": ""})),
        (
            "action of the wrong type",
            json!({"user_id": 7, "action": 5}),
        ),
    ];
    for (what, body) in bad {
        let r = app.post_json("/events", &body, None).await;
        assert!(r.status == 400 || r.status == 422, "{what}: {}", r.text);
    }

    let sent = app
        .post_json(
            "/notify",
            &json!({"user_id": "7", "channel": "log", "message": "hi"}),
            None,
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert_eq!(sent.json()["status"], "sent");
    assert_eq!(sent.json()["channel"], "log");
    app.post_json(
        "/notify",
        &json!({"user_id": "7", "channel": "pigeon", "message": "hi"}),
        None,
    )
    .await
    .assert_problem(422, "unknown channel");
}

/// Reads that match nothing answer at once with an empty result: the
/// statements that hang Spin 4.0.0-4.0.2 when run raw (the suite's strict
/// host traps on any such raw query).
#[tokio::test]
async fn reads_of_nothing_answer_empty() {
    let app = TestApp::spawn().await;
    let unknown = app.get("/metrics/user/nobody-at-all/actions", None).await;
    assert_eq!(unknown.status, 200, "{}", unknown.text);
    assert_eq!(
        unknown.json(),
        json!({"user_id": "nobody-at-all", "actions": {}})
    );
    let actions = app.get("/metrics/actions", None).await;
    assert_eq!(actions.status, 200, "{}", actions.text);
    assert_eq!(actions.json(), json!({}), "a fresh database counts nothing");

    let (_, login) = app.signed_in_user().await;
    let token = login["access_token"].as_str().unwrap();
    let mine = app.get("/notifications", Some(token)).await;
    assert_eq!(mine.status, 200, "{}", mine.text);
    assert_eq!(mine.json(), json!([]), "no events are dispatched here");
}
