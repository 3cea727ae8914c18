//! `order.created` delivered three times charges once and emits once,
//! alone or within batches; a batch of payment results moves each order
//! once, even when it names an order twice.

use std::collections::BTreeMap;
use std::time::Duration;

use bridge::events::event::{OutboxEvent, Signer};
use bridge::events::invoke::Invoker;

use crate::common::subscriber::count;
use crate::common::{Options, TestApp};

#[tokio::test]
async fn a_redelivered_order_is_charged_once() {
    let app = TestApp::spawn_with(Options {
        extra_vars: BTreeMap::from([("bridge_signing_secret".to_string(), "once".to_string())]),
        ..Options::default()
    })
    .await;
    let db = app.db().await;
    let admin = app.admin_token().await;
    let pid = app.product_id(&admin, "Once", "7.00", 5).await;
    let (buyer, _, _) = app.shopper().await;
    for token in ["tok_visa", "tok_declined"] {
        let id = app.placed(&buyer, &pid, 1, Some(token)).await;
        let event = outbox_event(&db, "order.created", &id).await;
        let invoker = Invoker::Embedded(app.running.as_ref().unwrap().host.clone());
        let signer = Signer::new("once");
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let attempt = invoker
                .deliver("/payments/events", &event, &signer, Duration::from_secs(10))
                .await;
            statuses.push(attempt.status);
        }
        assert_eq!(statuses, [Some(200); 3], "{token}");
        assert_eq!(
            charged(&db, &id).await,
            (1, 1),
            "{token}: one payment, one event"
        );
    }
}

/// How many payments order `id` has, and how many `payment.*` events.
async fn charged(db: &tokio_postgres::Client, id: &str) -> (i64, i64) {
    let payments = count(
        db,
        &format!("SELECT count(*) FROM payments WHERE order_id = '{id}'"),
    )
    .await;
    let emitted = count(
        db,
        &format!("SELECT count(*) FROM outbox WHERE type LIKE 'payment.%' AND subject = '{id}'"),
    )
    .await;
    (payments, emitted)
}

/// The outbox row of the `kind` event about `subject`, as the bridge reads it.
async fn outbox_event(db: &tokio_postgres::Client, kind: &str, subject: &str) -> OutboxEvent {
    let row = db
        .query_one(
            "SELECT id, source, type, subject, aggregate, \
             to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), dataschema, data::text, traceparent \
             FROM outbox WHERE type = $1 AND subject = $2",
            &[&kind, &subject],
        )
        .await
        .unwrap();
    OutboxEvent {
        position: 0,
        txid: String::new(),
        id: row.get(0),
        source: row.get(1),
        event_type: row.get(2),
        subject: row.get(3),
        aggregate: row.get(4),
        time: row.get(5),
        dataschema: row.get(6),
        data: row.get(7),
        traceparent: row.get(8),
    }
}

#[tokio::test]
async fn batches_mixing_new_and_redelivered_events_apply_each_once() {
    let app = TestApp::spawn_with(Options {
        extra_vars: BTreeMap::from([("bridge_signing_secret".to_string(), "once".to_string())]),
        ..Options::default()
    })
    .await;
    let db = app.db().await;
    let admin = app.admin_token().await;
    let pid = app.product_id(&admin, "Batch", "3.00", 10).await;
    let (buyer, _, _) = app.shopper().await;
    let mut orders = Vec::new();
    for token in ["tok_visa", "tok_declined", "tok_visa"] {
        orders.push(app.placed(&buyer, &pid, 1, Some(token)).await);
    }
    let mut created = Vec::new();
    for id in &orders {
        created.push(outbox_event(&db, "order.created", id).await);
    }
    let invoker = Invoker::Embedded(app.running.as_ref().unwrap().host.clone());
    let signer = Signer::new("once");
    let timeout = Duration::from_secs(10);

    // The first order alone, then batches holding it again, the others,
    // and one of them twice.
    let alone = invoker
        .deliver("/payments/events", &created[0], &signer, timeout)
        .await;
    assert_eq!(alone.status, Some(200));
    let batch = [
        created[0].clone(),
        created[1].clone(),
        created[2].clone(),
        created[1].clone(),
    ];
    for round in 0..2 {
        let attempt = invoker
            .deliver_batch("/payments/events", &batch, &signer, timeout)
            .await;
        assert_eq!(
            attempt.status,
            Some(200),
            "round {round}: {:?}",
            attempt.error
        );
    }
    for id in &orders {
        assert_eq!(
            charged(&db, id).await,
            (1, 1),
            "order {id}: one payment, one event"
        );
    }

    // The orders side: a batch of the three results, the first one twice
    // (applied in two statements), delivered twice.
    let mut results = Vec::new();
    for (id, kind) in
        orders
            .iter()
            .zip(["payment.succeeded", "payment.failed", "payment.succeeded"])
    {
        results.push(outbox_event(&db, kind, id).await);
    }
    results.push(results[0].clone());
    for round in 0..2 {
        let attempt = invoker
            .deliver_batch("/orders/events", &results, &signer, timeout)
            .await;
        assert_eq!(
            attempt.status,
            Some(200),
            "round {round}: {:?}",
            attempt.error
        );
    }
    for (id, status, event) in [
        (&orders[0], "paid", "order.paid"),
        (&orders[1], "payment_failed", "order.payment_failed"),
        (&orders[2], "paid", "order.paid"),
    ] {
        let moved = count(
            &db,
            &format!("SELECT count(*) FROM orders WHERE id = '{id}' AND status = '{status}'"),
        )
        .await;
        let emitted = count(
            &db,
            &format!("SELECT count(*) FROM outbox WHERE type = '{event}' AND subject = '{id}'"),
        )
        .await;
        assert_eq!(
            (moved, emitted),
            (1, 1),
            "order {id}: {status} once, one {event}"
        );
    }
}
