//! `bridge migrate` against the real Postgres: creates the database,
//! applies each file once, refuses edited history.

use bridge::migrate::{self, Migration};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

async fn drop_database(name: &str) {
    let (client, conn) =
        tokio_postgres::connect(&format!("{SERVER}/postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn migrations_create_the_database_apply_once_and_refuse_edits() {
    let name = format!("spinmesh_migrate_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{SERVER}/{name}");
    let mut migrations = vec![
        Migration {
            name: "0001_a.sql".into(),
            sql: "CREATE TABLE a (id int);".into(),
        },
        Migration {
            name: "0002_b.sql".into(),
            sql: "CREATE TABLE b (id int);".into(),
        },
    ];

    let first = migrate::run(&url, &migrations).await.unwrap();
    assert_eq!(first, vec!["0001_a.sql", "0002_b.sql"]);
    let again = migrate::run(&url, &migrations).await.unwrap();
    assert!(again.is_empty(), "nothing applied twice: {again:?}");

    migrations[0].sql = "CREATE TABLE a (id bigint);".into();
    let err = migrate::run(&url, &migrations)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("0001_a.sql"), "{err}");

    drop_database(&name).await;
}

#[tokio::test]
async fn a_failing_migration_is_rolled_back_whole() {
    let name = format!("spinmesh_migrate_{}", uuid::Uuid::new_v4().simple());
    let url = format!("{SERVER}/{name}");
    let migrations = vec![Migration {
        name: "0001_broken.sql".into(),
        sql: "CREATE TABLE half (id int); SELECT * FROM no_such_table;".into(),
    }];
    assert!(migrate::run(&url, &migrations).await.is_err());

    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let half = client
        .query_opt("SELECT 1 FROM pg_tables WHERE tablename = 'half'", &[])
        .await
        .unwrap();
    assert!(half.is_none(), "the first statement was rolled back too");
    let recorded = client
        .query_one("SELECT count(*) FROM _spinmesh_migrations", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(recorded, 0);
    drop(client);
    drop_database(&name).await;
}

#[test]
fn project_migrations_are_read_in_order() {
    let dir = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../migrations");
    let found = migrate::read_dir(&dir).unwrap();
    assert!(!found.is_empty());
    let names: Vec<&str> = found.iter().map(|m| m.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}
