//! Request ids and W3C trace context: every answer names its request, and
//! one purchase is followed by its trace id from the `POST /orders`
//! through the events it causes and the functions they invoke, in the
//! outbox and in the log.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use bridge::events::dispatch::DispatchConfig;

use crate::common::subscriber::eventually;
use crate::common::{Logs, Options, TestApp};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("request sent")
}

#[tokio::test]
async fn every_answer_carries_a_request_id_kept_when_the_client_sent_a_sane_one() {
    let app = TestApp::spawn().await;
    let kept = send(
        &app,
        reqwest::Method::GET,
        "/auth/health",
        &[("x-request-id", "req-42")],
    )
    .await;
    assert_eq!(kept.headers()["x-request-id"], "req-42");

    let fresh = send(&app, reqwest::Method::GET, "/auth/health", &[]).await;
    let id = fresh.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    let other = send(&app, reqwest::Method::GET, "/auth/health", &[]).await;
    assert_ne!(other.headers()["x-request-id"].to_str().unwrap(), id);

    // Not sane (too long, or spaces): replaced, never echoed.
    let long = "x".repeat(129);
    for insane in [long.as_str(), "two words"] {
        let replaced = send(
            &app,
            reqwest::Method::GET,
            "/auth/health",
            &[("x-request-id", insane)],
        )
        .await;
        let echoed = replaced.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(echoed, insane);
        assert_eq!(echoed.len(), 32);
    }

    // Answers the host makes itself carry one too: an unknown route under
    // a function (a 404 problem) and a bad method.
    let unknown = send(
        &app,
        reqwest::Method::GET,
        "/nowhere/at/all",
        &[("x-request-id", "req-43")],
    )
    .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.headers()["x-request-id"], "req-43");
}

/// The log lines (JSON) that name `trace_id`.
fn traced(logs: &Logs, trace_id: &str) -> Vec<Value> {
    logs.json_lines()
        .into_iter()
        .filter(|l| l["trace_id"] == trace_id)
        .collect()
}

fn delivered(lines: &[Value], subscription: &str, ty: &str) -> bool {
    lines.iter().any(|l| {
        l["message"] == "delivered" && l["subscription"] == subscription && l["type"] == ty
    })
}

#[tokio::test]
async fn one_purchase_is_followed_across_functions_by_its_trace_id() {
    let logs = Logs::capture_json("warn,spinmesh_host=debug,spinmesh_events=debug")
        .expect("the test's own log capture");
    let app = TestApp::spawn_with(Options {
        events: Some(DispatchConfig::default()),
        extra_vars: BTreeMap::from([(
            "bridge_signing_secret".to_string(),
            "trace-secret".to_string(),
        )]),
        ..Options::default()
    })
    .await;
    let admin = app.admin_token().await;
    let product = app.product_id(&admin, "Lamp", "25.00", 5).await;
    let (buyer, _, _) = app.shopper().await;

    let placed = app
        .client
        .post(app.url("/orders"))
        .bearer_auth(&buyer)
        .header("traceparent", CLIENT_TRACEPARENT)
        .header("x-request-id", "purchase-1")
        .json(&json!({"items": [{"product_id": product, "quantity": 1}], "payment": {"token": "tok_visa"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    assert_eq!(placed.headers()["x-request-id"], "purchase-1");
    let order: Value = placed.json().await.unwrap();
    let id = order["id"].as_str().unwrap();
    app.settled(&buyer, id, "paid").await;

    // The outbox: every event of the purchase carries the client's trace,
    // each written by a span of its own.
    let db = app.db().await;
    let chain = ["order.created", "payment.succeeded", "order.paid"];
    let traced_rows = || async {
        db.query(
            "SELECT type, traceparent FROM outbox WHERE traceparent LIKE $1 ORDER BY position",
            &[&format!("00-{TRACE_ID}-%")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect::<Vec<_>>()
    };
    eventually(
        "the purchase's events in the outbox",
        Duration::from_secs(30),
        || async {
            let rows = traced_rows().await;
            chain.iter().all(|ty| rows.iter().any(|(t, _)| t == ty))
        },
    )
    .await;
    let rows = traced_rows().await;
    for (ty, traceparent) in &rows {
        assert_ne!(
            traceparent, CLIENT_TRACEPARENT,
            "{ty}: a span of the function's own"
        );
        assert!(
            traceparent.ends_with("-01"),
            "{ty}: the client's flags kept: {traceparent}"
        );
    }
    let spans: std::collections::BTreeSet<&str> = rows.iter().map(|(_, t)| &t[36..52]).collect();
    assert!(
        spans.len() >= 3,
        "order, payment and order again are three invocations: {rows:?}"
    );

    // The log: the request and each delivery of the chain, by trace id.
    eventually(
        "the purchase's deliveries in the log",
        Duration::from_secs(30),
        || async {
            let lines = traced(&logs, TRACE_ID);
            delivered(&lines, "payments", "order.created")
                && delivered(&lines, "orders", "payment.succeeded")
                && delivered(&lines, "notifications", "order.paid")
        },
    )
    .await;
    let lines = traced(&logs, TRACE_ID);
    let request = lines
        .iter()
        .find(|l| l["message"] == "answered" && l["request_id"] == "purchase-1")
        .unwrap_or_else(|| panic!("the POST /orders line: {lines:#?}"));
    assert_eq!(request["route"], "/orders");
    assert_eq!(request["method"], "POST");
    assert_eq!(request["status"], 201);
    // The deliveries are requests to the subscribers' routes, answered
    // under the same trace: one event each (payments, orders) and a batch
    // (notifications, which continues its first event's trace).
    for route in ["/payments/...", "/orders/...", "/notifications/..."] {
        assert!(
            lines.iter().any(|l| l["message"] == "answered"
                && l["route"] == route
                && l["method"] == "POST"
                && l["status"]
                    .as_u64()
                    .is_some_and(|s| (200..300).contains(&s))),
            "{route}: {lines:#?}"
        );
    }
    // Nothing unrelated shares the trace.
    assert!(
        lines
            .iter()
            .all(|l| l["message"] == "answered" || l["message"] == "delivered"),
        "{lines:#?}"
    );
}
