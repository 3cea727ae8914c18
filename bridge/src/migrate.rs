//! `bridge migrate`: applies `migrations/*.sql` in file-name order.
//!
//! The database named by `database_url` is created if missing. Each file
//! runs once, in its own transaction, and is recorded with its checksum in
//! `_spinmesh_migrations`; editing an applied file is an error rather than a
//! silent divergence. An advisory lock serialises concurrent migrators (two
//! bridge replicas starting together).

use std::path::Path;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::database::Database;

/// Lock id for the migration advisory lock ("spinmig" in ASCII).
const MIGRATION_LOCK: i64 = 0x0073_7069_6e6d_6967;

/// One migration file.
#[derive(Debug, Clone)]
pub struct Migration {
    /// File name, e.g. `0001_auth.sql`; also the version recorded.
    pub name: String,
    /// The SQL.
    pub sql: String,
}

/// Reads `dir/*.sql` sorted by name.
///
/// # Errors
/// When the directory or a file cannot be read.
pub fn read_dir(dir: &Path) -> anyhow::Result<Vec<Migration>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "sql") {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .context("non-UTF-8 migration file name")?
                .to_string();
            let sql = std::fs::read_to_string(&path)?;
            out.push(Migration { name, sql });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Creates the database if needed, then applies pending migrations.
/// Returns the names of the files applied now.
///
/// # Errors
/// When the server is unreachable, a migration fails (its transaction is
/// rolled back), or an applied migration's file has changed.
pub async fn run(database: &Database, migrations: &[Migration]) -> anyhow::Result<Vec<String>> {
    ensure_database(database).await?;
    let (mut client, conn) = database.connect_raw().await?;
    let conn_task = tokio::spawn(conn);

    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS _spinmesh_migrations (
                version text PRIMARY KEY,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .context("creating _spinmesh_migrations")?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;

    let result = apply_pending(&mut client, migrations).await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    drop(client);
    let _ = conn_task.await;
    result
}

async fn apply_pending(
    client: &mut tokio_postgres::Client,
    migrations: &[Migration],
) -> anyhow::Result<Vec<String>> {
    let mut applied_now = Vec::new();
    for m in migrations {
        let checksum = hex::encode(Sha256::digest(m.sql.as_bytes()));
        let row = client
            .query_opt(
                "SELECT checksum FROM _spinmesh_migrations WHERE version = $1",
                &[&m.name],
            )
            .await?;
        match row {
            Some(row) => {
                let recorded: String = row.get(0);
                if recorded != checksum {
                    bail!(
                        "migration {} was changed after it was applied; add a new migration instead",
                        m.name
                    );
                }
            }
            None => {
                let tx = client.transaction().await?;
                tx.batch_execute(&m.sql)
                    .await
                    .with_context(|| format!("applying migration {}", m.name))?;
                tx.execute(
                    "INSERT INTO _spinmesh_migrations (version, checksum) VALUES ($1, $2)",
                    &[&m.name, &checksum],
                )
                .await?;
                tx.commit().await?;
                tracing::info!(migration = %m.name, "applied");
                applied_now.push(m.name.clone());
            }
        }
    }
    Ok(applied_now)
}

/// Connects to the server's `postgres` database and creates the target
/// database when it does not exist.
async fn ensure_database(database: &Database) -> anyhow::Result<()> {
    let name = database
        .config()
        .get_dbname()
        .context("database_url names no database")?
        .to_string();
    let (client, conn) = database.with_dbname("postgres").connect_raw().await?;
    let conn_task = tokio::spawn(conn);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
        {
            Ok(()) => tracing::info!(database = %name, "created database"),
            // Another migrator created it first.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(e).context(format!("creating database {name}")),
        }
    }
    drop(client);
    let _ = conn_task.await;
    Ok(())
}
