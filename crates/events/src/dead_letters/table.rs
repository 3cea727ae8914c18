//! The `bridge_dead_letters` table: the embedded transport's dead letters
//! and `bridge replay`'s.

use anyhow::Context;
use tokio_postgres::Client;

use super::{Entry, Store, now};
use crate::dispatch::DeadLetter;
use crate::event::{Binding, OutboxEvent};
use crate::outbox::AbortOnDrop;
use spinmesh_config::database::Database;

/// The table, through one connection.
pub struct TableStore {
    client: Client,
    _connection: AbortOnDrop,
}

impl TableStore {
    /// Connects.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn connect(database: &Database) -> anyhow::Result<Self> {
        let (client, conn) = database.connect_raw().await?;
        let connection = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        Ok(Self {
            client,
            _connection: connection,
        })
    }
}

impl Store for TableStore {
    async fn take(&mut self, subscriptions: &[String]) -> anyhow::Result<Vec<Entry>> {
        let rows = self
            .client
            .query(
                "SELECT id, subscription, attempts, status, error, headers, data::text,
                        to_char(first_failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                        to_char(failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                   FROM bridge_dead_letters WHERE subscription = ANY($1) ORDER BY id",
                &[&subscriptions],
            )
            .await
            .context("reading bridge_dead_letters")?;
        Ok(rows
            .iter()
            .map(|row| {
                let headers: serde_json::Value = row.get(5);
                let data: String = row.get(6);
                let header = |name: &str| headers.get(name).and_then(|v| v.as_str());
                Entry {
                    subscription: row.get(1),
                    event: OutboxEvent::from_broker(&Binding::HTTP, header, data.as_bytes()),
                    attempts: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
                    status: row
                        .get::<_, Option<i32>>(3)
                        .and_then(|s| u16::try_from(s).ok()),
                    error: row.get(4),
                    first_failed: row.get(7),
                    last_failed: row.get(8),
                    place: usize::try_from(row.get::<_, i64>(0)).unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn remove(&mut self, entry: &Entry) -> anyhow::Result<()> {
        self.client
            .execute(
                "DELETE FROM bridge_dead_letters WHERE id = $1",
                &[&(entry.place as i64)],
            )
            .await
            .context("removing a dead letter")?;
        Ok(())
    }

    async fn put_back(&mut self, entry: &Entry, why: &DeadLetter) -> anyhow::Result<()> {
        self.client
            .execute(
                "UPDATE bridge_dead_letters
                    SET attempts = $2, status = $3, error = $4, failed_at = $5::text::timestamptz
                  WHERE id = $1",
                &[
                    &(entry.place as i64),
                    &(why.attempts as i32),
                    &why.status.map(i32::from),
                    &why.error,
                    &now(),
                ],
            )
            .await
            .context("updating a dead letter")?;
        Ok(())
    }

    async fn finish(self) -> anyhow::Result<()> {
        Ok(())
    }
}
