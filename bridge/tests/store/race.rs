//! 50 racing orders for the last 10 units.

use serde_json::json;

use crate::common::TestApp;
use crate::common::subscriber::count;

#[tokio::test]
async fn fifty_orders_for_ten_units_accept_exactly_ten() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let admin = app.admin_token().await;
    let pid = app.product_id(&admin, "Last units", "3.50", 10).await;
    let mut buyers = Vec::new();
    for _ in 0..5 {
        buyers.push(app.shopper().await.0);
    }
    let body =
        json!({"items": [{"product_id": pid, "quantity": 1}], "payment": {"token": "tok_visa"}});
    let answers = futures::future::join_all((0..50).map(|i| {
        let (app, body, buyer) = (&app, &body, &buyers[i % buyers.len()]);
        async move { app.post_json("/orders", body, Some(buyer)).await }
    }))
    .await;
    let accepted = answers.iter().filter(|r| r.status == 201).count();
    let refused: Vec<_> = answers.iter().filter(|r| r.status == 409).collect();
    assert_eq!(
        accepted,
        10,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 40);
    for r in refused {
        r.assert_problem(409, "out of stock");
        let problem = r.json();
        assert_eq!(
            problem["type"],
            "https://spinmesh.dev/problems/out-of-stock"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains(&pid),
            "{problem}"
        );
    }
    assert_eq!(app.stock(&pid).await, 0);
    let stock = count(
        &db,
        &format!("SELECT stock::bigint FROM products WHERE id = '{pid}'"),
    )
    .await;
    assert_eq!(stock, 0, "never below zero");
    let sold = count(
        &db,
        "SELECT coalesce(sum(quantity), 0)::bigint FROM order_items",
    )
    .await;
    assert_eq!(sold, 10);
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 10);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM outbox WHERE type = 'order.created'"
        )
        .await,
        10
    );
}

#[tokio::test]
async fn an_order_is_all_lines_or_none() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let admin = app.admin_token().await;
    let plenty = app.product_id(&admin, "Plenty", "1.00", 100).await;
    let scarce = app.product_id(&admin, "Scarce", "2.00", 1).await;
    let (buyer, _, _) = app.shopper().await;
    let body = json!({"items": [
        {"product_id": plenty, "quantity": 5},
        {"product_id": scarce, "quantity": 2}
    ]});
    let r = app.post_json("/orders", &body, Some(&buyer)).await;
    r.assert_problem(409, "one line short");
    assert!(
        r.json()["detail"].as_str().unwrap().contains(&scarce),
        "{}",
        r.text
    );
    assert_eq!(app.stock(&plenty).await, 100, "nothing reserved");
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 0);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM outbox WHERE type = 'order.created'"
        )
        .await,
        0
    );

    // Two lines of one product add up; totals are exact decimals.
    let body = json!({"items": [
        {"product_id": plenty, "quantity": 2},
        {"product_id": plenty, "quantity": 1},
        {"product_id": scarce, "quantity": 1}
    ]});
    let r = app.post_json("/orders", &body, Some(&buyer)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let order = r.json();
    assert_eq!(order["total"], "5.00", "{order}");
    assert_eq!(order["items"].as_array().unwrap().len(), 2, "{order}");
    assert_eq!(app.stock(&plenty).await, 97);
}
