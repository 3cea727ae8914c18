//! The store's payment saga, run by every transport (embedded, RabbitMQ,
//! Kafka): HTTP functions → outbox → transport → idempotent consumers
//! that emit their own events → compensation.

use std::collections::BTreeMap;
use std::time::Duration;

use bridge::events::dispatch::DispatchConfig;
use bridge::events::invoke::Invoker;

use super::subscriber::{count, eventually, fast};
use super::transport::Transport;
use super::{Options, TestApp, root};

const SECRET: &str = "saga-secret";

async fn store_app(extra: &[(&str, &str)]) -> TestApp {
    let mut vars = BTreeMap::from([("bridge_signing_secret".to_string(), SECRET.to_string())]);
    for (k, v) in extra {
        vars.insert((*k).to_string(), (*v).to_string());
    }
    TestApp::spawn_with(Options {
        extra_vars: vars,
        ..Options::default()
    })
    .await
}

fn embedded(app: &TestApp) -> Invoker {
    Invoker::Embedded(app.running.as_ref().unwrap().host.clone())
}

/// Paid, declined, transiently failing and cancelled orders, end to end.
pub async fn saga_end_to_end(transport: Transport) {
    let app = store_app(&[]).await;
    let db = app.db().await;
    let admin = app.admin_token().await;
    let product = app.product(&admin, "Mug", "19.99", 10).await;
    let pid = product["id"].as_str().unwrap().to_owned();
    let (buyer, _, buyer_id) = app.shopper().await;

    // Cancelled while pending: placed before the event path runs.
    let cancelled = app.placed(&buyer, &pid, 1, Some("tok_visa")).await;
    let r = app
        .post_json(
            &format!("/orders/{cancelled}/cancel"),
            &serde_json::json!({}),
            Some(&buyer),
        )
        .await;
    assert_eq!(r.status, 200, "cancel: {}", r.text);
    assert_eq!(r.json()["status"], "cancelled");
    let again = app
        .post_json(
            &format!("/orders/{cancelled}/cancel"),
            &serde_json::json!({}),
            Some(&buyer),
        )
        .await;
    again.assert_problem(409, "cancelling twice");
    assert_eq!(
        again.json()["type"],
        "https://spinmesh.dev/problems/order-not-pending"
    );

    let runner = transport.start(
        &app,
        &root().join("spin.toml"),
        embedded(&app),
        None,
        fast(),
    );

    // Paid.
    let paid = app.placed(&buyer, &pid, 2, Some("tok_visa")).await;
    let order = app.settled(&buyer, &paid, "paid").await;
    assert_eq!(order["total"], "39.98", "{order}");
    assert_eq!(order["payment"]["status"], "succeeded", "{order}");
    let payment = app.get(&format!("/payments/{paid}"), Some(&buyer)).await;
    assert_eq!(payment.status, 200, "{}", payment.text);
    assert_eq!(payment.json()["amount"], "39.98");
    assert_eq!(payment.json()["status"], "succeeded");
    assert_eq!(payment.json()["user_id"], buyer_id.as_str());
    app.notified(&buyer, &format!("Your order {paid} has been paid"))
        .await;

    // Declined: failed, stock back, told.
    let declined = app.placed(&buyer, &pid, 3, Some("tok_declined")).await;
    let order = app.settled(&buyer, &declined, "payment_failed").await;
    assert_eq!(order["payment"]["reason"], "card_declined", "{order}");
    app.notified(
        &buyer,
        &format!("Your order {declined} could not be paid (card_declined)"),
    )
    .await;

    // Transient processor failure: retried by the bridge, then paid.
    let flaky = app.placed(&buyer, &pid, 1, Some("tok_error")).await;
    app.settled(&buyer, &flaky, "paid").await;
    let attempts = app
        .get(&format!("/payments/{flaky}"), Some(&buyer))
        .await
        .json();
    assert_eq!(attempts["attempts"], 2, "{attempts}");

    // The cancelled order's stock came back, and so did the declined
    // one's: 10 - 1 (cancelled, back) - 2 (paid) - 3 (declined, back) - 1 (paid).
    app.stock_becomes(&pid, 7).await;
    app.notified(
        &buyer,
        &format!("Your order {cancelled} has been cancelled"),
    )
    .await;
    // A payment that lands after the cancellation moves nothing.
    let order = app.order_of(&buyer, &cancelled).await;
    assert_eq!(order["status"], "cancelled", "{order}");

    // Exactly once across the chain: one payment and one payment event
    // per order, one release per failed or cancelled order.
    for id in [&cancelled, &paid, &declined, &flaky] {
        let payments = count(
            &db,
            &format!("SELECT count(*) FROM payments WHERE order_id = '{id}'"),
        )
        .await;
        let events = count(
            &db,
            &format!(
                "SELECT count(*) FROM outbox WHERE type LIKE 'payment.%' AND subject = '{id}'"
            ),
        )
        .await;
        assert_eq!((payments, events), (1, 1), "order {id}");
    }
    let db_stock = count(
        &db,
        &format!("SELECT stock::bigint FROM products WHERE id = '{pid}'"),
    )
    .await;
    assert_eq!(db_stock, 7);
    runner.stop().await;
}

/// An order nobody pays is cancelled by the bridge's clock once its
/// window closes (payments is left out, as if down): stock back, buyer
/// told.
pub async fn unpaid_orders_time_out(transport: Transport) {
    let app = store_app(&[("order_payment_timeout_seconds", "1")]).await;
    let db = app.db().await;
    let admin = app.admin_token().await;
    let pid = app.product_id(&admin, "Lamp", "5.00", 3).await;
    let (buyer, _, _) = app.shopper().await;
    let id = app.placed(&buyer, &pid, 2, Some("tok_visa")).await;
    assert_eq!(app.stock(&pid).await, 1);
    let config = DispatchConfig {
        tick_override: Some(Duration::from_millis(200)),
        ..fast()
    };
    let runner = transport.start_without(
        &app,
        &root().join("spin.toml"),
        embedded(&app),
        None,
        config,
        &["payments"],
    );
    let order = app.settled(&buyer, &id, "cancelled").await;
    assert_eq!(
        order["payment"]["reason"], "payment window expired",
        "{order}"
    );
    let reason = count(
        &db,
        &format!(
            "SELECT count(*) FROM outbox WHERE type = 'order.cancelled' AND subject = '{id}' \
             AND data->>'reason' = 'payment_timeout'"
        ),
    )
    .await;
    assert_eq!(reason, 1);
    app.stock_becomes(&pid, 3).await;
    app.notified(
        &buyer,
        &format!("Your order {id} has been cancelled (payment_timeout)"),
    )
    .await;
    eventually("no pending order left", Duration::from_secs(5), || async {
        count(&db, "SELECT count(*) FROM orders WHERE status = 'pending'").await == 0
    })
    .await;
    runner.stop().await;
}
