//! The products migration's stock functions against the real Postgres:
//! `reserve_stock(order, items)` takes every line or none and never
//! oversells under concurrency; `release_stock(order)` gives back once.

use bridge::database::Database;
use serde_json::json;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

/// A fresh, migrated database, dropped when the test ends.
struct Db {
    name: String,
    database: Database,
}

impl Db {
    async fn new() -> Self {
        let name = format!("spinmesh_stock_{}", Uuid::new_v4().simple());
        let database = crate::common::database(&name);
        let migrations =
            bridge::migrate::read_dir(&crate::common::root().join("migrations")).unwrap();
        bridge::migrate::run(&database, &migrations).await.unwrap();
        Self { name, database }
    }

    async fn product(&self, stock: i32) -> Uuid {
        let client = self.database.connect().await.unwrap();
        client
            .query_one(
                "INSERT INTO products (name, price, stock) VALUES ('thing', 19.99, $1) RETURNING id",
                &[&stock],
            )
            .await
            .unwrap()
            .get(0)
    }

    async fn stock(&self, id: Uuid) -> i32 {
        let client = self.database.connect().await.unwrap();
        client
            .query_one("SELECT stock FROM products WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        crate::common::drop_database_blocking(&self.name);
    }
}

/// Reserves `items` for a new order; the SQLSTATE on failure.
async fn reserve(db: &Database, items: serde_json::Value) -> Result<Vec<(Uuid, i32)>, String> {
    let client = db.connect().await.unwrap();
    let order = Uuid::new_v4();
    match client
        .query(
            "SELECT product_id, quantity FROM reserve_stock($1, $2::text::jsonb)",
            &[&order, &items.to_string()],
        )
        .await
    {
        Ok(rows) => Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect()),
        Err(e) => Err(e.code().map(|c| c.code().to_owned()).unwrap_or_default()),
    }
}

#[tokio::test]
async fn fifty_racing_orders_for_the_last_ten_units_make_exactly_ten() {
    let db = Db::new().await;
    let product = db.product(10).await;
    let orders = (0..50).map(|_| {
        let database = db.database.clone();
        tokio::spawn(async move {
            reserve(&database, json!([{"product_id": product, "quantity": 1}])).await
        })
    });
    let results = futures::future::join_all(orders).await;
    let (won, lost): (Vec<_>, Vec<_>) = results
        .into_iter()
        .map(|r| r.unwrap())
        .partition(Result::is_ok);
    assert_eq!(won.len(), 10, "exactly the stock was sold");
    assert!(
        lost.iter().all(|r| r.as_ref().unwrap_err() == "SMOOS"),
        "every other order is out of stock: {lost:?}"
    );
    assert_eq!(db.stock(product).await, 0);
}

#[tokio::test]
async fn an_order_reserves_every_line_or_none() {
    let db = Db::new().await;
    let (plenty, scarce) = (db.product(5).await, db.product(1).await);
    let err = reserve(
        &db.database,
        json!([{"product_id": plenty, "quantity": 2}, {"product_id": scarce, "quantity": 2}]),
    )
    .await
    .unwrap_err();
    assert_eq!(err, "SMOOS");
    assert_eq!(db.stock(plenty).await, 5, "the line that fit was not taken");

    let missing = reserve(
        &db.database,
        json!([{"product_id": plenty, "quantity": 1}, {"product_id": Uuid::new_v4(), "quantity": 1}]),
    )
    .await
    .unwrap_err();
    assert_eq!(missing, "SMNOP");
    for bad in [json!([]), json!([{"product_id": plenty, "quantity": 0}])] {
        let err = reserve(&db.database, bad.clone()).await.unwrap_err();
        assert_eq!(err, SqlState::INVALID_PARAMETER_VALUE.code(), "{bad}");
    }

    // Lines naming the same product are added up.
    let lines = reserve(
        &db.database,
        json!([{"product_id": plenty, "quantity": 2}, {"product_id": plenty, "quantity": 1}]),
    )
    .await
    .unwrap();
    assert_eq!(lines, vec![(plenty, 3)]);
    assert_eq!(db.stock(plenty).await, 2);
}

#[tokio::test]
async fn reserving_and_releasing_twice_changes_stock_once() {
    let db = Db::new().await;
    let product = db.product(4).await;
    let client = db.database.connect().await.unwrap();
    let order = Uuid::new_v4();
    let items = json!([{"product_id": product, "quantity": 3}]).to_string();
    for _ in 0..2 {
        client
            .query(
                "SELECT * FROM reserve_stock($1, $2::text::jsonb)",
                &[&order, &items],
            )
            .await
            .unwrap();
    }
    assert_eq!(
        db.stock(product).await,
        1,
        "a repeated reservation is a no-op"
    );
    let mut given_back = Vec::new();
    for _ in 0..2 {
        let n: i32 = client
            .query_one("SELECT release_stock($1)", &[&order])
            .await
            .unwrap()
            .get(0);
        given_back.push(n);
    }
    assert_eq!(given_back, vec![3, 0], "released once");
    assert_eq!(db.stock(product).await, 4);
}
