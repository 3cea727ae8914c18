//! What older clients of the replaced services send still works.

use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn express_clients_register_with_post_users_and_read_token() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "ada", "email": "ada@example.com", "password": "correct horse"});
    let r = app.post_json("/users", &body, None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let user = r.json();
    assert_eq!(user["name"], "ada");
    assert_eq!(user["email"], "ada@example.com");
    assert!(user["id"].is_string());
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
    app.post_json("/users", &body, None)
        .await
        .assert_problem(409, "duplicate");
    let bad = json!({"name": "a b", "email": "x@example.com", "password": "correct horse"});
    let r = app.post_json("/users", &bad, None).await;
    r.assert_problem(422, "bad name");
    assert_eq!(r.json()["errors"][0]["field"], "name");

    let login = app
        .post_json(
            "/login",
            &json!({"email": "ada@example.com", "password": "correct horse"}),
            None,
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    let login = login.json();
    assert_eq!(login["token"], login["access_token"], "{login}");
    let me = app.me(login["token"].as_str().unwrap()).await;
    assert_eq!(me.status, 200, "{}", me.text);
}

#[tokio::test]
async fn older_order_clients_send_one_item() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let pid = app.product_id(&admin, "Classic", "9.99", 3).await;
    let (buyer, _, _) = app.shopper().await;
    for body in [
        json!({"productId": pid, "quantity": 1}),
        json!({"product_id": pid, "quantity": 2}),
    ] {
        let r = app.post_json("/orders", &body, Some(&buyer)).await;
        assert_eq!(r.status, 201, "{body}: {}", r.text);
    }
    let history = app.get("/orders", Some(&buyer)).await.json();
    let totals: Vec<_> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["total"].clone())
        .collect();
    assert_eq!(
        totals,
        [json!("19.98"), json!("9.99")],
        "newest first: {history}"
    );
    assert_eq!(history["items"][0]["payment"]["status"], "pending");
}
