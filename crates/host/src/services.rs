//! Connection pools shared by every instance: one Postgres pool and one
//! pipelined Redis connection ([`Pipelined`]) per address a guest opens.
//!
//! Guests call `connection.open(address)` on every request; opening a real
//! socket each time would dominate the request. Pools are created lazily on
//! first use of an address and bounded, so a burst of requests queues for a
//! connection instead of exhausting the database.
//!
//! The maps of pools and connections sit behind `std::sync::Mutex`es held
//! only to look an address up or insert it, never across I/O (see mini-redis
//! `db.rs` on choosing a blocking mutex for such short sections). Building
//! a Postgres pool does no I/O. A Redis connect does, so the map holds a
//! per-address [`OnceCell`]: concurrent first opens of one address share
//! one connect, and a slow or unreachable address never holds up opens of
//! another. A failed connect is remembered for [`REDIS_RETRY_INTERVAL`]:
//! opens in that time fail at once with the same error instead of each
//! waiting out a connect of their own (1.6 s against a refusing server),
//! so a function that carries on without Redis (the rate limiter, the
//! catalog cache) stays fast while Redis is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use postgres_native_tls::MakeTlsConnector;
use tokio::sync::OnceCell;

use super::outbox_writes::{self, OutboxWrites};
use super::postgres::PgCompat;
use super::redis_pipeline::Pipelined;
use spinmesh_config::database::PgTls;

/// Sizes, timeouts and behaviour of the host's connections.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Maximum Postgres connections per address.
    pub pg_max_connections: usize,
    /// Maximum Postgres connections one instance (one request) may hold
    /// open at once, so a guest opening connections in a loop fails fast
    /// instead of draining the pool every other request needs.
    pub pg_max_connections_per_instance: usize,
    /// How long a guest waits for a pooled connection before `connection-failed`.
    pub acquire_timeout: Duration,
    /// Redis URL backing Spin key-value stores.
    pub key_value_redis_url: String,
    /// Trusted roots for Postgres TLS beyond the system's.
    pub pg_tls: PgTls,
    /// How closely `query` reproduces released Spin's quirks.
    pub pg_compat: PgCompat,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            pg_max_connections: 16,
            pg_max_connections_per_instance: 4,
            acquire_timeout: Duration::from_secs(5),
            key_value_redis_url: "redis://127.0.0.1:6379".to_string(),
            pg_tls: PgTls::default(),
            pg_compat: PgCompat::default(),
        }
    }
}

/// The host's shared connections.
pub struct Services {
    pub(crate) config: PoolConfig,
    pg_tls: MakeTlsConnector,
    pg: Mutex<HashMap<String, deadpool_postgres::Pool>>,
    redis: Mutex<HashMap<String, Arc<OnceCell<Pipelined>>>>,
    /// The last failed Redis connect per address: when, and why.
    redis_failures: Mutex<HashMap<String, (Instant, String)>>,
    /// Guests' outbox writes, announced by the host once the event path
    /// takes over (see [`OutboxWrites`]).
    pub(crate) outbox: OutboxWrites,
}

impl Services {
    /// Empty pools; nothing connects until a guest asks.
    ///
    /// # Errors
    /// When the TLS library cannot be initialised.
    pub fn new(config: PoolConfig) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            pg_tls: config.pg_tls.connector()?,
            config,
            pg: Mutex::default(),
            redis: Mutex::default(),
            redis_failures: Mutex::default(),
            outbox: OutboxWrites::default(),
        }))
    }

    /// A pooled Postgres client for `address`.
    ///
    /// # Errors
    /// When the address is not a valid connection string, or no connection
    /// becomes available within the acquire timeout.
    pub async fn pg_client(&self, address: &str) -> anyhow::Result<deadpool_postgres::Object> {
        let pool = {
            let mut pools = lock(&self.pg);
            match pools.get(address) {
                Some(pool) => pool.clone(),
                None => {
                    let mut pg_config = spinmesh_config::database::parse_url(address)?;
                    if self.outbox.announced(address) {
                        let options = match pg_config.get_options() {
                            Some(given) => format!("{given} {}", outbox_writes::OPT_OUT),
                            None => outbox_writes::OPT_OUT.to_owned(),
                        };
                        pg_config.options(&options);
                    }
                    // TLS unless the URL disables it, verified, as in Spin.
                    let manager = deadpool_postgres::Manager::from_config(
                        pg_config,
                        self.pg_tls.clone(),
                        deadpool_postgres::ManagerConfig {
                            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
                        },
                    );
                    let pool = deadpool_postgres::Pool::builder(manager)
                        .max_size(self.config.pg_max_connections)
                        .runtime(deadpool_postgres::Runtime::Tokio1)
                        .wait_timeout(Some(self.config.acquire_timeout))
                        .create_timeout(Some(self.config.acquire_timeout))
                        .build()
                        .context("building Postgres pool")?;
                    pools.insert(address.to_string(), pool.clone());
                    pool
                }
            }
        };
        let client = pool
            .get()
            .await
            .map_err(anyhow::Error::new)
            .context("no Postgres connection")?;
        Ok(client)
    }

    /// The most Postgres connections one instance may hold at once.
    pub(crate) fn pg_instance_cap(&self) -> usize {
        self.config.pg_max_connections_per_instance.max(1)
    }

    /// The shared, auto-reconnecting, pipelined Redis connection for
    /// `address`.
    ///
    /// # Errors
    /// When the address is invalid or the server cannot be reached (now,
    /// or at a connect less than [`REDIS_RETRY_INTERVAL`] ago).
    pub async fn redis(&self, address: &str) -> anyhow::Result<Pipelined> {
        let cell = {
            let mut cells = lock(&self.redis);
            match cells.get(address) {
                Some(cell) => cell.clone(),
                None => cells.entry(address.to_string()).or_default().clone(),
            }
        };
        if let Some(conn) = cell.get() {
            return Ok(conn.clone());
        }
        if let Some((at, why)) = lock(&self.redis_failures).get(address)
            && at.elapsed() < REDIS_RETRY_INTERVAL
        {
            anyhow::bail!(
                "{why} (a connect {} ms ago failed; retrying after {} ms)",
                at.elapsed().as_millis(),
                REDIS_RETRY_INTERVAL.as_millis()
            );
        }
        match cell.get_or_try_init(|| self.connect_redis(address)).await {
            Ok(conn) => {
                lock(&self.redis_failures).remove(address);
                Ok(conn.clone())
            }
            Err(err) => {
                lock(&self.redis_failures)
                    .insert(address.to_string(), (Instant::now(), format!("{err:#}")));
                Err(err)
            }
        }
    }

    /// One Redis connect, bounded by the acquire timeout. A failure leaves
    /// the address's cell empty, so the next open tries again.
    async fn connect_redis(&self, address: &str) -> anyhow::Result<Pipelined> {
        let client = redis::Client::open(address).context("invalid Redis address")?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(self.config.acquire_timeout)
            .set_response_timeout(self.config.acquire_timeout)
            .set_number_of_retries(1);
        tokio::time::timeout(
            self.config.acquire_timeout,
            redis::aio::ConnectionManager::new_with_config(client, config),
        )
        .await
        .context("timed out connecting to Redis")?
        .context("connecting to Redis")
        .map(Pipelined::spawn)
    }
}

/// How long a failed Redis connect answers for its address before the next
/// open tries again.
pub const REDIS_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Locks a map; a panic elsewhere while it was held left it consistent
/// (every section is a lookup or an insert), so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
