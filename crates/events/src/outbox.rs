//! Reading the transactional outbox in commit-safe order, for every
//! consumer of it: the embedded dispatcher's subscriptions and the relays
//! that publish to a broker.
//!
//! Rows are read only when their transaction is older than every running
//! transaction (`txid < pg_snapshot_xmin`), in `(txid, position)` order, so
//! a row that commits late is never skipped. Each reader has a named,
//! durable cursor in `bridge_cursors` and holds a session advisory lock on
//! that name: one bridge replica reads, the others stand by and take over
//! when its connection goes away.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Notify, watch};
use tokio_postgres::{Client, Statement};

use spinmesh_config::database::Database;

use super::event::OutboxEvent;

/// The channel the outbox trigger notifies.
pub const OUTBOX_CHANNEL: &str = "spinmesh_outbox";

/// How long a stand-by reader waits before trying the lock again.
const STANDBY_RETRY: Duration = Duration::from_secs(2);

/// A named reader's position in the outbox, with its own connection.
pub struct OutboxCursor {
    client: Client,
    _connection: AbortOnDrop,
    name: String,
    read: Statement,
    advance: Statement,
    /// Where the next read starts: past the last batch read.
    txid: String,
    position: i64,
}

impl OutboxCursor {
    /// Connects, waits (standing by) until this process holds the reader's
    /// lock, and loads or creates the cursor. `None` when shutdown came first.
    ///
    /// # Errors
    /// When the database cannot be reached or queried.
    pub async fn open(
        database: &Database,
        name: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<Option<Self>> {
        let (client, conn) = database.connect_raw().await?;
        let connection = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let key = lock_key(name);
        loop {
            let held: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await?
                .get(0);
            if held {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(STANDBY_RETRY) => {}
                _ = shutdown.changed() => return Ok(None),
            }
        }
        // A busy reader commits a cursor advance after every batch. Waiting
        // for each to reach the disk buys nothing: a crash can only lose
        // the latest advances (never a hole: the WAL is replayed in order,
        // so a dead letter written before an advance that survived survives
        // too), and losing an advance redelivers events the handlers have
        // already claimed, which they answer as duplicates.
        client
            .batch_execute("SET synchronous_commit = off")
            .await
            .context("configuring the cursor's session")?;
        client
            .execute(
                "INSERT INTO bridge_cursors (subscription, txid, position) VALUES ($1, '0', 0)
                 ON CONFLICT (subscription) DO NOTHING",
                &[&name],
            )
            .await
            .context("creating the cursor")?;
        let read = client.prepare(&read_sql("")).await?;
        // Prepared once: a busy reader advances after every batch.
        let advance = client
            .prepare(
                "UPDATE bridge_cursors SET txid = $2::text::xid8, position = $3, updated_at = now()
                  WHERE subscription = $1",
            )
            .await?;
        let row = client
            .query_one(
                "SELECT txid::text, position FROM bridge_cursors WHERE subscription = $1",
                &[&name],
            )
            .await?;
        Ok(Some(Self {
            client,
            _connection: connection,
            name: name.to_string(),
            read,
            advance,
            txid: row.get(0),
            position: row.get(1),
        }))
    }

    /// The next batch after the cursor, waiting for a notification or the
    /// poll interval while there is none. `None` on shutdown.
    ///
    /// # Errors
    /// When the query fails.
    pub async fn next_batch(
        &mut self,
        limit: i64,
        wake: &Notify,
        poll: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<Option<Vec<OutboxEvent>>> {
        loop {
            if *shutdown.borrow() {
                return Ok(None);
            }
            // Register interest before reading so a notification that
            // arrives during the read is not lost.
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let rows = self
                .client
                .query(&self.read, &[&self.txid, &self.position, &limit])
                .await?;
            if let Some(last) = rows.last() {
                let events: Vec<OutboxEvent> = rows.iter().map(row_to_event).collect();
                // Read on from here: a reader may read ahead of what it
                // has acknowledged (the relay does), and the durable
                // position moves only in `advance`.
                self.txid = last.get(1);
                self.position = last.get(0);
                return Ok(Some(events));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => return Ok(None),
            }
        }
    }

    /// Moves the durable cursor past `last`: everything up to it is
    /// acknowledged. Reading goes on from the last batch read, which may
    /// be further.
    ///
    /// # Errors
    /// When the update fails; the durable cursor then stays where it was,
    /// and the reader must open it again.
    pub async fn advance(&mut self, last: &OutboxEvent) -> anyhow::Result<()> {
        self.client
            .execute(&self.advance, &[&self.name, &last.txid, &last.position])
            .await
            .context("advancing the cursor")?;
        Ok(())
    }
}

/// The statement reading the next `$3` committed rows after position
/// `($1, $2)` in `(txid, position)` order, plus `extra` conditions.
fn read_sql(extra: &str) -> String {
    format!(
        "SELECT position, txid::text, id, source, type, subject, aggregate,
                to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                dataschema, data::text
           FROM outbox
          WHERE (txid, position) > ($1::text::xid8, $2)
            AND txid < pg_snapshot_xmin(pg_current_snapshot()) {extra}
          ORDER BY txid, position
          LIMIT $3"
    )
}

/// A one-off read of the whole outbox from its start, as it stood when the
/// scan opened: every row committed by then (opening waits while an older
/// transaction still holds the horizon below them), in the same order as
/// cursors read. Nothing durable, no lock: a replay reads with
/// it while the live subscription keeps its own cursor.
pub struct OutboxScan {
    client: Client,
    _connection: AbortOnDrop,
    read: Statement,
    upto: String,
    txid: String,
    position: i64,
}

impl OutboxScan {
    /// Connects and fixes the end of the scan.
    ///
    /// # Errors
    /// When the database cannot be reached or queried.
    pub async fn open(database: &Database) -> anyhow::Result<Self> {
        let (client, conn) = database.connect_raw().await?;
        let connection = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let read = client
            .prepare(&read_sql("AND txid < $4::text::xid8"))
            .await
            .context("preparing the outbox scan")?;
        let upto = horizon_past_newest(&client).await?;
        Ok(Self {
            client,
            _connection: connection,
            read,
            upto,
            txid: "0".to_owned(),
            position: 0,
        })
    }

    /// The next up to `limit` rows; empty at the end.
    ///
    /// # Errors
    /// When the query fails.
    pub async fn next_page(&mut self, limit: i64) -> anyhow::Result<Vec<OutboxEvent>> {
        let rows = self
            .client
            .query(
                &self.read,
                &[&self.txid, &self.position, &limit, &self.upto],
            )
            .await
            .context("reading the outbox")?;
        let events: Vec<OutboxEvent> = rows.iter().map(row_to_event).collect();
        if let Some(last) = events.last() {
            self.txid = last.txid.clone();
            self.position = last.position;
        }
        Ok(events)
    }
}

/// How long a scan waits for the transactions that hold its horizon back.
const HORIZON_WAIT: Duration = Duration::from_secs(30);

/// The scan's end: a horizon past every row committed when it opened.
///
/// Rows are read only below the cluster's oldest running transaction, so a
/// transaction open anywhere (another database included) would hide rows
/// that committed before the replay started. This waits, up to
/// [`HORIZON_WAIT`], until the horizon has passed the newest of them.
async fn horizon_past_newest(client: &Client) -> anyhow::Result<String> {
    let newest: Option<String> = client
        .query_opt(
            "SELECT txid::text FROM outbox ORDER BY txid DESC, position DESC LIMIT 1",
            &[],
        )
        .await
        .context("reading the outbox's newest row")?
        .map(|row| row.get(0));
    let deadline = tokio::time::Instant::now() + HORIZON_WAIT;
    loop {
        let row = client
            .query_one(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text,
                        $1::text IS NULL OR pg_snapshot_xmin(pg_current_snapshot()) > $1::text::xid8",
                &[&newest],
            )
            .await
            .context("reading the outbox's horizon")?;
        if row.get::<_, bool>(1) {
            return Ok(row.get(0));
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "the outbox's newest rows are still behind a transaction open for over {}s \
                 (see pg_stat_activity); replay again once it ends",
                HORIZON_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What an outbox reader does with each batch before its cursor moves on.
pub trait BatchHandler: Sync {
    /// Handles the batch; `Ok` acknowledges it.
    fn handle(&self, events: &[OutboxEvent]) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The loop of the embedded dispatcher's readers: open the named cursor
/// (standing by while another replica holds it), hand each batch to
/// `handler`, advance past it once handled. `Ok` on shutdown; an error
/// leaves the cursor where it was. (The relay runs its own loop over the
/// same cursor, publishing ahead of the broker's confirmations.)
///
/// # Errors
/// When the database or the handler fails.
pub async fn consume(
    database: &Database,
    name: &str,
    (limit, poll): (i64, Duration),
    wake: &Notify,
    mut shutdown: watch::Receiver<bool>,
    handler: &impl BatchHandler,
) -> anyhow::Result<()> {
    let Some(mut cursor) = OutboxCursor::open(database, name, &mut shutdown).await? else {
        return Ok(());
    };
    while let Some(events) = cursor.next_batch(limit, wake, poll, &mut shutdown).await? {
        handler.handle(&events).await?;
        if let Some(last) = events.last() {
            cursor.advance(last).await?;
        }
    }
    Ok(())
}

fn row_to_event(r: &tokio_postgres::Row) -> OutboxEvent {
    OutboxEvent {
        position: r.get(0),
        txid: r.get(1),
        id: r.get(2),
        source: r.get(3),
        event_type: r.get(4),
        subject: r.get(5),
        aggregate: r.get(6),
        time: r.get(7),
        dataschema: r.get(8),
        data: r.get(9),
    }
}

/// A stable advisory-lock key per reader name.
fn lock_key(name: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("spinmesh-outbox-reader:{name}").as_bytes());
    i64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}

/// Ends the connection task when the cursor goes away.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

/// A connection of its own for occasional statements beside a reader's:
/// made on first use, and made again after a statement failed on it.
pub(crate) struct LazyClient {
    database: Database,
    slot: Option<(Client, AbortOnDrop)>,
}

impl LazyClient {
    pub(crate) fn new(database: Database) -> Self {
        Self {
            database,
            slot: None,
        }
    }

    /// Runs `statements` on the connection, connecting first if needed.
    ///
    /// # Errors
    /// When connecting or `statements` fail; the connection is then
    /// dropped, so the next call connects afresh.
    pub(crate) async fn run<T>(
        &mut self,
        statements: impl AsyncFnOnce(&Client) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let (client, _) = match self.slot.take() {
            Some(connected) => self.slot.insert(connected),
            None => {
                let (client, conn) = self.database.connect_raw().await?;
                let task = AbortOnDrop(tokio::spawn(async move {
                    let _ = conn.await;
                }));
                self.slot.insert((client, task))
            }
        };
        let result = statements(client).await;
        if result.is_err() {
            self.slot = None;
        }
        result
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
