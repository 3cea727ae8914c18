//! Helpers for the store's tests: admins, products, orders, and waiting
//! for an order to settle.

use std::time::Duration;

use serde_json::{Value, json};

use super::subscriber::eventually;
use super::{Reply, TestApp};

/// The password every store test account uses.
pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    /// Sends `body` with extra request headers.
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        body: &Value,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        Reply::from(req.send().await.expect("request sent")).await
    }

    /// A fresh user's access token, with its email and id.
    pub async fn shopper(&self) -> (String, String, String) {
        let (email, login) = self.signed_in_user().await;
        let token = login["access_token"].as_str().unwrap().to_owned();
        let id = self.me(&token).await.json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        (token, email, id)
    }

    /// A fresh account made admin the way an operator does it (`bridge
    /// admin grant`'s code), logged in after the grant.
    pub async fn admin_token(&self) -> String {
        let (_, email, _) = self.shopper().await;
        bridge::admin::set_role(&super::database(&self.database), &email, kit_role_admin())
            .await
            .expect("grant admin");
        let login = self.login(&email, PASSWORD).await;
        assert_eq!(login.status, 200, "{}", login.text);
        login.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// Creates a product (as `admin`); returns it.
    pub async fn product(&self, admin: &str, name: &str, price: &str, stock: i64) -> Value {
        let body = json!({"name": name, "price": price, "stock": stock, "description": "test"});
        let r = self.post_json("/products", &body, Some(admin)).await;
        assert_eq!(r.status, 201, "create product: {}", r.text);
        r.json()
    }

    /// Creates a product (as `admin`); returns its id.
    pub async fn product_id(&self, admin: &str, name: &str, price: &str, stock: i64) -> String {
        self.product(admin, name, price, stock).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Places an order for `quantity` of `product` paid with `token`.
    pub async fn order(
        &self,
        buyer: &str,
        product: &str,
        quantity: i64,
        token: Option<&str>,
    ) -> Reply {
        let mut body = json!({"items": [{"product_id": product, "quantity": quantity}]});
        if let Some(t) = token {
            body["payment"] = json!({"token": t});
        }
        self.post_json("/orders", &body, Some(buyer)).await
    }

    /// Places an order that must be accepted; returns its id.
    pub async fn placed(
        &self,
        buyer: &str,
        product: &str,
        quantity: i64,
        token: Option<&str>,
    ) -> String {
        let r = self.order(buyer, product, quantity, token).await;
        assert_eq!(r.status, 201, "place order: {}", r.text);
        let order = r.json();
        assert_eq!(order["status"], "pending", "{order}");
        order["id"].as_str().unwrap().to_owned()
    }

    /// The order as its buyer sees it.
    pub async fn order_of(&self, buyer: &str, id: &str) -> Value {
        let r = self.get(&format!("/orders/{id}"), Some(buyer)).await;
        assert_eq!(r.status, 200, "get order: {}", r.text);
        r.json()
    }

    /// Waits until order `id` has `status`; returns it.
    pub async fn settled(&self, buyer: &str, id: &str, status: &str) -> Value {
        let what = format!("order {id} {status}");
        eventually(&what, Duration::from_secs(30), || async {
            self.order_of(buyer, id).await["status"] == status
        })
        .await;
        self.order_of(buyer, id).await
    }

    /// A product's stock as the API shows it.
    pub async fn stock(&self, product: &str) -> i64 {
        let r = self.get(&format!("/products/{product}"), None).await;
        assert_eq!(r.status, 200, "get product: {}", r.text);
        r.json()["stock"].as_i64().unwrap()
    }

    /// Waits until a product's stock is `expected`.
    pub async fn stock_becomes(&self, product: &str, expected: i64) {
        let what = format!("stock of {product} back to {expected}");
        eventually(&what, Duration::from_secs(30), || async {
            self.stock(product).await == expected
        })
        .await;
    }

    /// The buyer's notification texts.
    pub async fn notices(&self, buyer: &str) -> Vec<String> {
        let r = self.get("/notifications", Some(buyer)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Waits until the buyer has a notification containing `text`.
    pub async fn notified(&self, buyer: &str, text: &str) {
        let what = format!("a notification containing {text:?}");
        eventually(&what, Duration::from_secs(30), || async {
            self.notices(buyer).await.iter().any(|n| n.contains(text))
        })
        .await;
    }
}

fn kit_role_admin() -> bridge::admin::Role {
    bridge::admin::Role::Admin
}
