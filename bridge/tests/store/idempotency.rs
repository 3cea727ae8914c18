//! `Idempotency-Key` on `POST /orders`.

use serde_json::json;

use crate::common::TestApp;
use crate::common::subscriber::count;

#[tokio::test]
async fn the_same_key_and_body_answer_once() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let admin = app.admin_token().await;
    let pid = app.product_id(&admin, "Keyed", "4.25", 5).await;
    let (buyer, _, _) = app.shopper().await;
    let body =
        json!({"items": [{"product_id": pid, "quantity": 2}], "payment": {"token": "tok_visa"}});
    let key = [("idempotency-key", "\"order-1\"")];
    let first = app
        .send_with("POST", "/orders", &body, Some(&buyer), &key)
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let second = app
        .send_with("POST", "/orders", &body, Some(&buyer), &key)
        .await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(second.json(), first.json(), "the first answer, again");
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 1);
    assert_eq!(app.stock(&pid).await, 3, "reserved once");

    // Whitespace does not make another body; content does.
    let spaced = app
        .client
        .post(app.url("/orders"))
        .bearer_auth(&buyer)
        .header("idempotency-key", "\"order-1\"")
        .header("content-type", "application/json")
        .body(format!(
            "  {}  ",
            serde_json::to_string_pretty(&body).unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(spaced.status(), 201);
    let other = json!({"items": [{"product_id": pid, "quantity": 3}]});
    let r = app
        .send_with("POST", "/orders", &other, Some(&buyer), &key)
        .await;
    r.assert_problem(422, "a key reused with another body");
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 1);

    // Keys are per user: another buyer's same key is another order.
    let (stranger, _, _) = app.shopper().await;
    let r = app
        .send_with("POST", "/orders", &body, Some(&stranger), &key)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ne!(r.json()["id"], first.json()["id"]);
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 2);
}

#[tokio::test]
async fn refusals_are_replayed_and_running_requests_conflict() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let admin = app.admin_token().await;
    let pid = app.product_id(&admin, "One left", "1.00", 1).await;
    let (buyer, _, buyer_id) = app.shopper().await;
    let body = json!({"items": [{"product_id": pid, "quantity": 2}]});
    let key = [("idempotency-key", "too-many")];
    let first = app
        .send_with("POST", "/orders", &body, Some(&buyer), &key)
        .await;
    first.assert_problem(409, "out of stock");
    // Restocking does not change the answer to that request.
    let r = app
        .send(
            "PATCH",
            &format!("/products/{pid}"),
            br#"{"stock": 10}"#.to_vec(),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let again = app
        .send_with("POST", "/orders", &body, Some(&buyer), &key)
        .await;
    again.assert_problem(409, "the stored refusal");
    assert_eq!(again.json(), first.json());

    // A request with the key still running (its claim held, no answer).
    let hash = {
        let r = app
            .send_with(
                "POST",
                "/orders",
                &body,
                Some(&buyer),
                &[("idempotency-key", "probe")],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let row = db
            .query_one(
                "SELECT request_hash FROM order_idempotency_keys WHERE key = 'probe'",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, String>(0)
    };
    let user: uuid::Uuid = buyer_id.parse().unwrap();
    db.execute(
        "INSERT INTO order_idempotency_keys (user_id, key, request_hash, locked_until) \
         VALUES ($1, 'in-flight', $2, now() + interval '1 minute')",
        &[&user, &hash],
    )
    .await
    .unwrap();
    let busy = app
        .send_with(
            "POST",
            "/orders",
            &body,
            Some(&buyer),
            &[("idempotency-key", "in-flight")],
        )
        .await;
    busy.assert_problem(409, "a request with the key in flight");
    // Once its lease runs out without an order, the key is free again.
    db.execute(
        "UPDATE order_idempotency_keys SET locked_until = now() - interval '1 second' WHERE key = 'in-flight'",
        &[],
    )
    .await
    .unwrap();
    let retried = app
        .send_with(
            "POST",
            "/orders",
            &body,
            Some(&buyer),
            &[("idempotency-key", "in-flight")],
        )
        .await;
    assert_eq!(retried.status, 201, "{}", retried.text);

    for bad in ["", "\"\"", "has space", &"k".repeat(300)] {
        let r = app
            .send_with(
                "POST",
                "/orders",
                &body,
                Some(&buyer),
                &[("idempotency-key", bad)],
            )
            .await;
        r.assert_problem(400, &format!("key {bad:?}"));
    }
}
