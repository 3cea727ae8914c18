//! `bridge migrate` against the real Postgres: creates the database,
//! applies each file once, refuses edited history.

use bridge::database::Database;
use bridge::migrate::{self, Migration};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

fn database(name: &str) -> Database {
    Database::new(&url(name), &Default::default()).unwrap()
}

fn url(name: &str) -> String {
    format!("{SERVER}/{name}?sslmode=disable")
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("..")
}

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
    let db = database(&name);
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

    let first = migrate::run(&db, &migrations).await.unwrap();
    assert_eq!(first, vec!["0001_a.sql", "0002_b.sql"]);
    let again = migrate::run(&db, &migrations).await.unwrap();
    assert!(again.is_empty(), "nothing applied twice: {again:?}");

    migrations[0].sql = "CREATE TABLE a (id bigint);".into();
    let err = migrate::run(&db, &migrations)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("0001_a.sql"), "{err}");

    drop_database(&name).await;
}

#[tokio::test]
async fn a_failing_migration_is_rolled_back_whole() {
    let name = format!("spinmesh_migrate_{}", uuid::Uuid::new_v4().simple());
    let db = database(&name);
    let migrations = vec![Migration {
        name: "0001_broken.sql".into(),
        sql: "CREATE TABLE half (id int); SELECT * FROM no_such_table;".into(),
    }];
    assert!(migrate::run(&db, &migrations).await.is_err());

    let client = db.connect().await.unwrap();
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

/// `bridge migrate` as a user runs it, before any key exists: the JWT keys
/// and the signing secret are required variables of the app, but migrating
/// needs only `database_url`.
#[tokio::test]
async fn bridge_migrate_needs_only_the_database_url() {
    let name = format!("spinmesh_migrate_{}", uuid::Uuid::new_v4().simple());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bridge"))
        .current_dir(root())
        .args(["migrate", "-f", "spin.toml", "--migrations", "migrations"])
        .env("SPIN_VARIABLE_DATABASE_URL", url(&name))
        .env_remove("SPIN_VARIABLE_JWT_PRIVATE_KEY")
        .env_remove("SPIN_VARIABLE_JWT_PUBLIC_KEY")
        .env_remove("SPIN_VARIABLE_BRIDGE_SIGNING_SECRET")
        .output()
        .expect("the bridge binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "migrate failed: {stdout}\n{stderr}");
    let project = migrate::read_dir(&root().join("migrations")).unwrap();
    assert!(
        stdout.contains(&format!("{} migration(s) applied", project.len())),
        "{stdout}"
    );
    let client = database(&name).connect().await.unwrap();
    let applied: i64 = client
        .query_one("SELECT count(*) FROM _spinmesh_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, project.len() as i64);
    drop(client);
    drop_database(&name).await;
}

#[tokio::test]
async fn the_posts_migration_announces_accounts_renamed_before_it() {
    let name = format!("spinmesh_migrate_{}", uuid::Uuid::new_v4().simple());
    let db = database(&name);
    let all = migrate::read_dir(&root().join("migrations")).unwrap();
    let split = all.iter().position(|m| m.name == "0010_posts.sql").unwrap();
    migrate::run(&db, &all[..split]).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&url(&name), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // Two accounts registered as the auth function did before revisions;
    // one renamed since.
    client
        .batch_execute(
            "INSERT INTO users (id, email, username, password_hash) VALUES
               ('00000000-0000-0000-0000-00000000000a', 'a@example.com', 'ada', 'x'),
               ('00000000-0000-0000-0000-00000000000b', 'b@example.com', 'bob', 'x');
             INSERT INTO outbox (id, source, type, subject, aggregate, data)
             SELECT gen_random_uuid(), '/auth', 'user.registered', id::text, 'users',
                    jsonb_build_object('version', 1, 'user_id', id, 'email', email, 'username', username)
               FROM users;
             UPDATE users SET username = 'countess' WHERE email = 'a@example.com';",
        )
        .await
        .unwrap();

    migrate::run(&db, &all).await.unwrap();
    let rows = client
        .query(
            "SELECT subject, data FROM outbox WHERE type = 'user.updated'",
            &[],
        )
        .await
        .unwrap();
    let updated: Vec<(String, serde_json::Value)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        updated,
        [(
            "00000000-0000-0000-0000-00000000000a".to_owned(),
            serde_json::json!({"version": 1, "user_id": "00000000-0000-0000-0000-00000000000a",
                               "username": "countess", "revision": 2})
        )]
    );
    let revisions: Vec<i64> = client
        .query("SELECT revision FROM users ORDER BY email", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(revisions, [2, 1]);
    drop(client);
    drop_database(&name).await;
}
