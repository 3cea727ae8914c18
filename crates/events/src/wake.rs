//! What wakes the outbox's readers (the embedded dispatcher's
//! subscriptions, the relays) when an event commits.
//!
//! Two sources feed one [`Notify`]:
//! - **LISTEN** on the outbox channel, for writers in other processes:
//!   functions under `spin up`, another replica's guests, psql. The
//!   outbox trigger NOTIFYs per writing statement.
//! - **The host's own announcements** ([`OutboxWrites`]) when the readers
//!   run beside the host that serves the functions (`bridge up`): the
//!   host's sessions skip the trigger's NOTIFY, which serializes commits,
//!   and the host wakes the readers directly after each committed write.
//!   For readers elsewhere, this process then sends one NOTIFY per
//!   [`ANNOUNCE_WINDOW`] at most while writes go on, carrying its own id,
//!   which its own listener ignores.
//!
//! Readers also poll, so a lost connection here delays events, it never
//! loses them.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_postgres::AsyncMessage;

use super::dispatch::DispatchConfig;
use super::outbox::{AbortOnDrop, OUTBOX_CHANNEL};
use super::reconnect::reconnecting;
use spinmesh_config::database::Database;
use spinmesh_host::outbox_writes::OutboxWrites;

/// At most one announcement NOTIFY per this long while guests write.
pub const ANNOUNCE_WINDOW: Duration = Duration::from_millis(10);

/// Starts waking outbox readers: returns what they wait on and the tasks
/// feeding it (dropping the set stops them). With `local`, the host's
/// announcements wake them too, and this process takes over announcing
/// its guests' writes to the database for other processes.
pub fn start(
    database: &Database,
    local: Option<&OutboxWrites>,
    config: &DispatchConfig,
    shutdown: &watch::Receiver<bool>,
) -> (Arc<Notify>, JoinSet<()>) {
    let mut tasks = JoinSet::new();
    let me = uuid::Uuid::new_v4().to_string();
    let wake = match local {
        Some(writes) => {
            writes.announce_for(database.url());
            tasks.spawn(announce(
                database.clone(),
                writes.clone(),
                me.clone(),
                config.clone(),
                shutdown.clone(),
            ));
            writes.readers()
        }
        None => Arc::new(Notify::new()),
    };
    tasks.spawn(listen(
        database.clone(),
        wake.clone(),
        me,
        config.clone(),
        shutdown.clone(),
    ));
    (wake, tasks)
}

/// LISTENs for outbox inserts and wakes every waiting reader, except for
/// this process's own announcements (payload `me`).
async fn listen(
    database: Database,
    wake: Arc<Notify>,
    me: String,
    config: DispatchConfig,
    shutdown: watch::Receiver<bool>,
) {
    let round = || async {
        let mut shutdown = shutdown.clone();
        let (client, mut conn) = database.connect_raw().await?;
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        // `LISTEN` takes an identifier, not a parameter.
        let sql = format!("LISTEN {OUTBOX_CHANNEL}");
        let listen = client.batch_execute(&sql);
        tokio::pin!(listen);
        // Drive the connection while LISTEN is in flight.
        loop {
            tokio::select! {
                r = &mut listen => { r?; break; }
                m = messages.next() => if m.is_none() { anyhow::bail!("connection closed") },
            }
        }
        // Anything committed before LISTEN took effect.
        wake.notify_waiters();
        loop {
            tokio::select! {
                m = messages.next() => match m {
                    Some(Ok(AsyncMessage::Notification(n))) if n.payload() != me => wake.notify_waiters(),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => anyhow::bail!("connection closed"),
                },
                _ = shutdown.changed() => return Ok(()),
            }
        }
    };
    reconnecting(
        "outbox listener (readers poll meanwhile)",
        &config,
        &shutdown,
        round,
    )
    .await;
}

/// Sends one NOTIFY (payload `me`) per [`ANNOUNCE_WINDOW`] at most while
/// the host announces writes, and one after each (re)connect for writes
/// made while it was away.
async fn announce(
    database: Database,
    writes: OutboxWrites,
    me: String,
    config: DispatchConfig,
    shutdown: watch::Receiver<bool>,
) {
    let round = || async {
        let mut shutdown = shutdown.clone();
        let (client, conn) = database.connect_raw().await?;
        let _connection = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        loop {
            client
                .execute("SELECT pg_notify($1, $2)", &[&OUTBOX_CHANNEL, &me])
                .await?;
            tokio::time::sleep(ANNOUNCE_WINDOW).await;
            tokio::select! {
                () = writes.to_announce() => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    };
    reconnecting("outbox announcer", &config, &shutdown, round).await;
}
