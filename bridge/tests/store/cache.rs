//! The product cache: a successful write is visible to the next read;
//! with Redis gone, reads still answer from Postgres.

use std::collections::BTreeMap;

use serde_json::json;

use crate::common::{Options, TestApp};

fn cache(r: &crate::common::Reply) -> &str {
    r.headers
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn writes_and_stock_changes_are_seen_by_the_next_read() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let pid = app.product_id(&admin, "Cached", "10.00", 1).await;
    let path = format!("/products/{pid}");
    let list = "/products?q=cached";
    app.get(&path, None).await;
    let hit = app.get(&path, None).await;
    assert_eq!(cache(&hit), "hit", "the second read comes from Redis");
    app.get(list, None).await;
    assert_eq!(cache(&app.get(list, None).await), "hit");

    let r = app
        .send(
            "PATCH",
            &path,
            br#"{"price": "12.50"}"#.to_vec(),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let item = app.get(&path, None).await;
    assert_eq!(item.json()["price"], "12.50", "the new price at once");
    let page = app.get(list, None).await.json();
    assert_eq!(
        page["items"][0]["price"], "12.50",
        "in listings too: {page}"
    );

    // Ordering the last unit is a stock change the cache must not hide.
    assert_eq!(cache(&app.get(&path, None).await), "hit");
    let (buyer, _, _) = app.shopper().await;
    app.placed(&buyer, &pid, 1, Some("tok_visa")).await;
    assert_eq!(app.get(&path, None).await.json()["stock"], 0);
    let in_stock = app
        .get("/products?q=cached&in_stock=true", None)
        .await
        .json();
    assert_eq!(in_stock["items"], json!([]), "{in_stock}");

    app.send("DELETE", &path, Vec::new(), Some(&admin)).await;
    app.get(&path, None).await.assert_problem(404, "archived");
    assert_eq!(app.get(list, None).await.json()["items"], json!([]));
}

#[tokio::test]
async fn reads_answer_from_postgres_when_redis_is_down() {
    // Redis refuses database 99999, so every connection the functions
    // open fails, as when the server is gone.
    let app = TestApp::spawn_with(Options {
        extra_vars: BTreeMap::from([(
            "redis_url".to_string(),
            "redis://127.0.0.1:6379/99999".to_string(),
        )]),
        ..Options::default()
    })
    .await;
    let db = app.db().await;
    let id: uuid::Uuid = db
        .query_one(
            "INSERT INTO products (name, price, stock) VALUES ('Uncached', 3.30, 4) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let item = app.get(&format!("/products/{id}"), None).await;
    assert_eq!(item.status, 200, "{}", item.text);
    assert_eq!(cache(&item), "bypass");
    assert_eq!(item.json()["price"], "3.30");
    let list = app.get("/products", None).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.json()["items"][0]["id"], id.to_string());
}

#[tokio::test]
async fn listings_page_stably_and_filter() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for i in 0..7 {
        let price = format!("{}.00", i + 1);
        let stock = if i == 3 { 0 } else { 5 };
        app.product(&admin, &format!("Widget {i}"), &price, stock)
            .await;
    }
    app.product(&admin, "Gadget", "100.00", 1).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/products?q=WIDGET&limit=3&cursor={c}"),
            None => "/products?q=WIDGET&limit=3".to_owned(),
        };
        let page = app.get(&path, None).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let page = page.json();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["name"].as_str().unwrap().to_owned());
        }
        // A product added mid-way shows up at the end, nothing repeats.
        if seen.len() == 3 {
            app.product(&admin, "Widget late", "1.00", 1).await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..7).map(|i| format!("Widget {i}")).collect();
    expected.push("Widget late".into());
    assert_eq!(seen, expected);
    let cheap = app
        .get("/products?min_price=2&max_price=3.00", None)
        .await
        .json();
    let names: Vec<_> = cheap["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("Widget 1"), json!("Widget 2")]);
    let stocked = app
        .get("/products?q=widget&in_stock=true&limit=100", None)
        .await
        .json();
    assert_eq!(
        stocked["items"].as_array().unwrap().len(),
        7,
        "Widget 3 has none"
    );
}
