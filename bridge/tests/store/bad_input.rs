//! Bad input on every store route: a clear problem, never a 500, and
//! nothing changed.

use serde_json::json;

use crate::common::TestApp;
use crate::common::subscriber::count;

/// (method, path, body, bearer token, expected status, why).
type Case<'a> = (&'a str, String, Vec<u8>, Option<&'a str>, u16, &'a str);

#[tokio::test]
async fn every_store_route_refuses_bad_input() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    let admin = app.admin_token().await;
    let pid = app.product_id(&admin, "Target", "5.00", 5).await;
    let (buyer, _, _) = app.shopper().await;
    let item = |q: serde_json::Value| json!({"items": [{"product_id": pid, "quantity": q}]});
    let many: Vec<_> = (0..10_000)
        .map(|_| json!({"product_id": pid, "quantity": 1}))
        .collect();
    let huge = "x".repeat(2 * 1024 * 1024);
    let missing = uuid::Uuid::new_v4().to_string();

    let admin_t = Some(admin.as_str());
    let buyer_t = Some(buyer.as_str());
    let product_path = format!("/products/{pid}");
    let cases: Vec<Case> = vec![
        // POST /products
        (
            "POST",
            "/products".into(),
            b"{not json".to_vec(),
            admin_t,
            400,
            "malformed",
        ),
        (
            "POST",
            "/products".into(),
            b"".to_vec(),
            admin_t,
            400,
            "empty",
        ),
        (
            "POST",
            "/products".into(),
            b"[]".to_vec(),
            admin_t,
            400,
            "array",
        ),
        (
            "POST",
            "/products".into(),
            huge.clone().into_bytes(),
            admin_t,
            413,
            "huge",
        ),
        (
            "POST",
            "/products".into(),
            br#"{"name":"a","price":19.999,"stock":1}"#.to_vec(),
            admin_t,
            422,
            "float with many places",
        ),
        (
            "POST",
            "/products".into(),
            br#"{"name":"a","price":"0.001","stock":1}"#.to_vec(),
            admin_t,
            422,
            "three places",
        ),
        (
            "POST",
            "/products".into(),
            br#"{"name":"a","price":"-5","stock":1}"#.to_vec(),
            admin_t,
            422,
            "negative price",
        ),
        (
            "POST",
            "/products".into(),
            br#"{"name":"a","price":1e300,"stock":1}"#.to_vec(),
            admin_t,
            422,
            "huge price",
        ),
        (
            "POST",
            "/products".into(),
            br#"{"name":"a","price":"1","stock":-1}"#.to_vec(),
            admin_t,
            422,
            "negative stock",
        ),
        (
            "POST",
            "/products".into(),
            br#"{"name":"a","price":"1","stock":99999999999999}"#.to_vec(),
            admin_t,
            422,
            "huge stock",
        ),
        (
            "POST",
            "/products".into(),
            br#"{"name":"a","price":"1","stock":1,"owner":"me"}"#.to_vec(),
            admin_t,
            422,
            "unknown field",
        ),
        (
            "POST",
            "/products".into(),
            br#"{"name":{"x":1},"price":"1","stock":1}"#.to_vec(),
            admin_t,
            422,
            "wrong type",
        ),
        (
            "POST",
            "/products".into(),
            format!(r#"{{"name":"{}","price":"1","stock":1}}"#, "n".repeat(201)).into_bytes(),
            admin_t,
            422,
            "long name",
        ),
        // PATCH /products/{id}
        (
            "PATCH",
            product_path.clone(),
            b"{}".to_vec(),
            admin_t,
            422,
            "empty patch",
        ),
        (
            "PATCH",
            product_path.clone(),
            br#"{"price":"1.234"}"#.to_vec(),
            admin_t,
            422,
            "patch price places",
        ),
        (
            "PATCH",
            product_path.clone(),
            br#"{"prize":"1.00"}"#.to_vec(),
            admin_t,
            422,
            "patch typo",
        ),
        (
            "PATCH",
            product_path.clone(),
            br#"{"stock":"ten"}"#.to_vec(),
            admin_t,
            422,
            "patch stock type",
        ),
        (
            "PATCH",
            format!("/products/{missing}"),
            br#"{"stock":1}"#.to_vec(),
            admin_t,
            404,
            "patch unknown",
        ),
        (
            "PATCH",
            "/products/not-a-uuid".into(),
            br#"{"stock":1}"#.to_vec(),
            admin_t,
            404,
            "patch bad id",
        ),
        (
            "DELETE",
            format!("/products/{missing}"),
            vec![],
            admin_t,
            404,
            "delete unknown",
        ),
        (
            "PUT",
            product_path.clone(),
            vec![],
            admin_t,
            405,
            "wrong method",
        ),
        // GET /products
        (
            "GET",
            "/products?limit=0".into(),
            vec![],
            None,
            422,
            "limit 0",
        ),
        (
            "GET",
            "/products?limit=101".into(),
            vec![],
            None,
            422,
            "limit 101",
        ),
        (
            "GET",
            "/products?limit=abc".into(),
            vec![],
            None,
            422,
            "limit type",
        ),
        (
            "GET",
            "/products?cursor=forged".into(),
            vec![],
            None,
            422,
            "forged cursor",
        ),
        (
            "GET",
            "/products?min_price=-1".into(),
            vec![],
            None,
            422,
            "negative min",
        ),
        (
            "GET",
            "/products?max_price=1.999".into(),
            vec![],
            None,
            422,
            "max places",
        ),
        (
            "GET",
            "/products?min_price=5&max_price=1".into(),
            vec![],
            None,
            422,
            "min above max",
        ),
        (
            "GET",
            "/products?in_stock=yes".into(),
            vec![],
            None,
            422,
            "in_stock value",
        ),
        (
            "GET",
            "/products?colour=red".into(),
            vec![],
            None,
            422,
            "unknown parameter",
        ),
        (
            "GET",
            format!("/products?q={}", "q".repeat(201)),
            vec![],
            None,
            422,
            "long q",
        ),
        (
            "GET",
            format!("/products/{missing}"),
            vec![],
            None,
            404,
            "unknown product",
        ),
        (
            "GET",
            "/products/123".into(),
            vec![],
            None,
            404,
            "bad product id",
        ),
        // POST /orders
        (
            "POST",
            "/orders".into(),
            b"{oops".to_vec(),
            buyer_t,
            400,
            "order malformed",
        ),
        (
            "POST",
            "/orders".into(),
            huge.clone().into_bytes(),
            buyer_t,
            413,
            "order huge",
        ),
        (
            "POST",
            "/orders".into(),
            item(json!(0)).to_string().into_bytes(),
            buyer_t,
            422,
            "zero quantity",
        ),
        (
            "POST",
            "/orders".into(),
            item(json!(-3)).to_string().into_bytes(),
            buyer_t,
            422,
            "negative quantity",
        ),
        (
            "POST",
            "/orders".into(),
            item(json!(2.5)).to_string().into_bytes(),
            buyer_t,
            422,
            "fractional quantity",
        ),
        (
            "POST",
            "/orders".into(),
            item(json!("2")).to_string().into_bytes(),
            buyer_t,
            422,
            "quantity as text",
        ),
        (
            "POST",
            "/orders".into(),
            item(json!(1e30)).to_string().into_bytes(),
            buyer_t,
            422,
            "huge quantity",
        ),
        (
            "POST",
            "/orders".into(),
            json!({"items": many}).to_string().into_bytes(),
            buyer_t,
            422,
            "10,000 items",
        ),
        (
            "POST",
            "/orders".into(),
            json!({"items": []}).to_string().into_bytes(),
            buyer_t,
            422,
            "no items",
        ),
        (
            "POST",
            "/orders".into(),
            json!({"items": [{"product_id": missing, "quantity": 1}]})
                .to_string()
                .into_bytes(),
            buyer_t,
            422,
            "unknown product",
        ),
        (
            "POST",
            "/orders".into(),
            json!({"items": [{"product_id": "x", "quantity": 1}]})
                .to_string()
                .into_bytes(),
            buyer_t,
            422,
            "product id not a uuid",
        ),
        (
            "POST",
            "/orders".into(),
            json!({"items": [{"product_id": pid, "quantity": 1}], "discount": 50})
                .to_string()
                .into_bytes(),
            buyer_t,
            422,
            "unknown field",
        ),
        (
            "POST",
            "/orders".into(),
            json!({"items": [{"product_id": pid, "quantity": 1}], "total": "0.01"})
                .to_string()
                .into_bytes(),
            buyer_t,
            422,
            "client total",
        ),
        (
            "POST",
            "/orders".into(),
            json!({"items": [{"product_id": pid, "quantity": 1}], "payment": {"token": 5}})
                .to_string()
                .into_bytes(),
            buyer_t,
            422,
            "token type",
        ),
        (
            "POST",
            "/orders".into(),
            item(json!(1)).to_string().into_bytes(),
            None,
            401,
            "anonymous order",
        ),
        (
            "POST",
            "/orders".into(),
            item(json!(1)).to_string().into_bytes(),
            Some("not.a.jwt"),
            401,
            "forged token",
        ),
        // GET /orders, /orders/{id}, cancel, payments
        (
            "GET",
            "/orders?limit=500".into(),
            vec![],
            buyer_t,
            422,
            "history limit",
        ),
        (
            "GET",
            "/orders?cursor=AAAA".into(),
            vec![],
            buyer_t,
            422,
            "history cursor",
        ),
        (
            "GET",
            "/orders?page=2".into(),
            vec![],
            buyer_t,
            422,
            "history unknown parameter",
        ),
        (
            "GET",
            "/orders".into(),
            vec![],
            None,
            401,
            "anonymous history",
        ),
        (
            "GET",
            "/orders/nope".into(),
            vec![],
            buyer_t,
            404,
            "order bad id",
        ),
        (
            "GET",
            format!("/orders/{missing}"),
            vec![],
            buyer_t,
            404,
            "unknown order",
        ),
        (
            "POST",
            format!("/orders/{missing}/cancel"),
            vec![],
            buyer_t,
            404,
            "cancel unknown",
        ),
        (
            "DELETE",
            "/orders".into(),
            vec![],
            buyer_t,
            405,
            "orders wrong method",
        ),
        (
            "GET",
            "/payments/nope".into(),
            vec![],
            buyer_t,
            404,
            "payment bad id",
        ),
        (
            "GET",
            format!("/payments/{missing}"),
            vec![],
            buyer_t,
            404,
            "unknown payment",
        ),
        (
            "GET",
            format!("/payments/{missing}"),
            vec![],
            None,
            401,
            "anonymous payment",
        ),
        // Event routes take only signed deliveries.
        (
            "POST",
            "/products/events".into(),
            b"{}".to_vec(),
            None,
            401,
            "unsigned products delivery",
        ),
        (
            "POST",
            "/orders/events".into(),
            b"{}".to_vec(),
            None,
            401,
            "unsigned orders delivery",
        ),
        (
            "POST",
            "/payments/events".into(),
            b"{}".to_vec(),
            None,
            401,
            "unsigned payments delivery",
        ),
    ];
    for (method, path, body, token, status, why) in cases {
        let r = app.send(method, &path, body, token).await;
        r.assert_problem(status, why);
    }
    assert_eq!(app.stock(&pid).await, 5, "nothing reserved");
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM products").await, 1);
    let product = app.get(&format!("/products/{pid}"), None).await.json();
    assert_eq!(product["price"], "5.00", "no patch applied: {product}");
}
