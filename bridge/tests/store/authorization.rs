//! Who may do what on the store's routes.

use serde_json::json;

use crate::common::TestApp;
use crate::common::store::PASSWORD;

#[tokio::test]
async fn orders_and_payments_are_their_owners_and_admins_only() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let pid = app.product_id(&admin, "Private", "2.00", 5).await;
    let (alice, _, _) = app.shopper().await;
    let (mallory, _, _) = app.shopper().await;
    let id = app.placed(&alice, &pid, 1, Some("tok_visa")).await;
    // Record a payment row directly (no event path here) to test reads.
    let db = app.db().await;
    db.execute(
        "INSERT INTO payments (order_id, user_id, amount, currency, status) \
         SELECT id, user_id, total, currency, 'succeeded' FROM orders WHERE id = $1::text::uuid",
        &[&id],
    )
    .await
    .unwrap();

    for (path, what) in [
        (format!("/orders/{id}"), "another's order"),
        (format!("/payments/{id}"), "another's payment"),
    ] {
        let r = app.get(&path, Some(&mallory)).await;
        r.assert_problem(404, what);
        let unknown = path.replace(&id, &uuid::Uuid::new_v4().to_string());
        assert_eq!(
            app.get(&unknown, Some(&mallory)).await.json()["detail"]
                .as_str()
                .map(|d| d.starts_with("no ")),
            Some(true),
            "unknown and not-yours read alike"
        );
        assert_eq!(
            app.get(&path, Some(&alice)).await.status,
            200,
            "{what} for its owner"
        );
        assert_eq!(
            app.get(&path, Some(&admin)).await.status,
            200,
            "{what} for an admin"
        );
        app.get(&path, None).await.assert_problem(401, "anonymous");
    }
    let r = app
        .post_json(&format!("/orders/{id}/cancel"), &json!({}), Some(&mallory))
        .await;
    r.assert_problem(404, "cancelling another's order");
    assert_eq!(app.order_of(&alice, &id).await["status"], "pending");
    let mine = app.get("/orders", Some(&mallory)).await.json();
    assert_eq!(mine["items"], json!([]), "history shows only one's own");
}

#[tokio::test]
async fn only_admins_change_the_catalog_and_a_revoked_admin_loses_it_on_refresh() {
    let app = TestApp::spawn().await;
    let (user, _, _) = app.shopper().await;
    let body = json!({"name": "Nope", "price": "1.00", "stock": 1});
    app.post_json("/products", &body, Some(&user))
        .await
        .assert_problem(403, "user creates");
    app.post_json("/products", &body, None)
        .await
        .assert_problem(401, "anonymous creates");

    let (_, email, _) = app.shopper().await;
    let database = crate::common::database(&app.database);
    bridge::admin::set_role(&database, &email, bridge::admin::Role::Admin)
        .await
        .unwrap();
    let login = app.login(&email, PASSWORD).await.json();
    let admin = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let pid = app.product_id(&admin, "Yes", "1.00", 1).await;
    let path = format!("/products/{pid}");
    app.send("PATCH", &path, br#"{"price":"2.00"}"#.to_vec(), Some(&user))
        .await
        .assert_problem(403, "user edits");
    app.send("DELETE", &path, Vec::new(), Some(&user))
        .await
        .assert_problem(403, "user deletes");
    assert_eq!(
        app.send(
            "PATCH",
            &path,
            br#"{"price":"2.00"}"#.to_vec(),
            Some(&admin)
        )
        .await
        .status,
        200
    );

    bridge::admin::set_role(&database, &email, bridge::admin::Role::User)
        .await
        .unwrap();
    let refreshed = app.refresh(&refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    let demoted = refreshed.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.send(
        "PATCH",
        &path,
        br#"{"price":"3.00"}"#.to_vec(),
        Some(&demoted),
    )
    .await
    .assert_problem(403, "revoked admin after refresh");
    assert_eq!(
        app.send("DELETE", &path, Vec::new(), Some(&admin))
            .await
            .status,
        204
    );
    app.get(&path, None)
        .await
        .assert_problem(404, "deleted product");
}
