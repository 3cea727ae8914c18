//! `order.created` delivered three times charges once and emits once.

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
        let row = db
            .query_one(
                "SELECT id, source, type, subject, aggregate, \
                 to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), dataschema, data::text \
                 FROM outbox WHERE type = 'order.created' AND subject = $1",
                &[&id],
            )
            .await
            .unwrap();
        let event = OutboxEvent {
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
        };
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
        let payments = count(
            &db,
            &format!("SELECT count(*) FROM payments WHERE order_id = '{id}'"),
        )
        .await;
        let emitted = count(
            &db,
            &format!(
                "SELECT count(*) FROM outbox WHERE type LIKE 'payment.%' AND subject = '{id}'"
            ),
        )
        .await;
        assert_eq!(
            (payments, emitted),
            (1, 1),
            "{token}: one payment, one event"
        );
    }
}
