//! Redis through Spin's `fermyon:spin/redis@2.0.0`.

use anyhow::anyhow;
use spin_sdk::redis::{self, RedisParameter};

pub use spin_sdk::redis::Connection;

use crate::config;
use crate::problem::ApiError;

/// Opens a connection to the URL in the `redis_url` variable.
///
/// # Errors
///
/// 500 when the variable is missing, 503 when Redis is unreachable.
pub fn connect() -> Result<Connection, ApiError> {
    let url = config::get(config::REDIS_URL)?;
    Connection::open(&url).map_err(|e| classify(e, "connecting to redis"))
}

/// A type error is our bug (500); every other Redis failure means the
/// server is unreachable or overloaded (503).
pub fn classify(err: redis::Error, context: &str) -> ApiError {
    match err {
        redis::Error::TypeError => ApiError::Internal(anyhow!("{context}: redis type error")),
        other => ApiError::unavailable("redis", anyhow!("{context}: {other:?}")),
    }
}

/// `SET key value EX ttl_secs`.
///
/// # Errors
///
/// As [`classify`].
pub fn set_with_ttl(
    conn: &Connection,
    key: &str,
    value: &[u8],
    ttl_secs: u64,
) -> Result<(), ApiError> {
    let ttl = i64::try_from(ttl_secs.max(1)).unwrap_or(i64::MAX);
    let args = [
        RedisParameter::Binary(key.as_bytes().to_vec()),
        RedisParameter::Binary(value.to_vec()),
        RedisParameter::Binary(b"EX".to_vec()),
        RedisParameter::Int64(ttl),
    ];
    conn.execute("SET", &args)
        .map(drop)
        .map_err(|e| classify(e, "SET with TTL"))
}

/// Whether `key` holds a value.
///
/// # Errors
///
/// As [`classify`].
pub fn exists(conn: &Connection, key: &str) -> Result<bool, ApiError> {
    conn.get(key)
        .map(|value| value.is_some())
        .map_err(|e| classify(e, "GET"))
}

/// Whether each of `keys` holds a value, in one `MGET` round trip.
///
/// # Errors
///
/// As [`classify`]; a reply of the wrong shape is a 500.
pub fn exist_many<const N: usize>(
    conn: &Connection,
    keys: [&str; N],
) -> Result<[bool; N], ApiError> {
    let args: Vec<RedisParameter> = keys
        .iter()
        .map(|k| RedisParameter::Binary(k.as_bytes().to_vec()))
        .collect();
    let reply = conn
        .execute("MGET", &args)
        .map_err(|e| classify(e, "MGET"))?;
    if reply.len() != N {
        return Err(ApiError::Internal(anyhow!(
            "MGET returned {} values for {N} keys",
            reply.len()
        )));
    }
    let mut out = [false; N];
    for (slot, value) in out.iter_mut().zip(reply) {
        *slot = !matches!(value, redis::RedisResult::Nil);
    }
    Ok(out)
}

/// `GET key`.
///
/// # Errors
///
/// As [`classify`].
pub fn get(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>, ApiError> {
    conn.get(key).map_err(|e| classify(e, "GET"))
}

/// A family of cache entries invalidated all at once by bumping one
/// counter (a versioned key scheme).
///
/// Every entry's key embeds the family's current version
/// (`<prefix>:<version>:<entry>`), so a write that changes what any entry
/// could show only has to `INCR` the version: readers then miss, fill
/// entries under the new version, and the old ones age out by their TTL.
/// That keeps invalidation O(1) for list pages whose keys nobody could
/// enumerate. It is race-free in the direction that matters: a reader
/// that filled an entry from the data before a write did so under the old
/// version, which nobody reads once the writer has bumped it, and the
/// writer bumps before it answers.
#[derive(Debug, Clone, Copy)]
pub struct Versioned {
    /// Key prefix, e.g. `spinmesh:products`.
    pub prefix: &'static str,
    /// Lifetime of an entry, in seconds: the bound on staleness if a bump
    /// is lost (Redis down at write time).
    pub ttl_secs: u64,
}

/// The product catalog: every product read (items and list pages). Bumped
/// by the products function on every catalog write and stock release, and
/// by the orders function when it reserves stock.
pub const PRODUCTS: Versioned = Versioned {
    prefix: "spinmesh:products",
    ttl_secs: 60,
};

impl Versioned {
    fn version_key(&self) -> String {
        format!("{}:version", self.prefix)
    }

    /// The current version (0 before the first bump).
    ///
    /// # Errors
    ///
    /// As [`classify`]; a version that is not a number is a 500.
    pub fn version(&self, conn: &Connection) -> Result<u64, ApiError> {
        match get(conn, &self.version_key())? {
            None => Ok(0),
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    ApiError::Internal(anyhow!("{} is not a number", self.version_key()))
                }),
        }
    }

    /// The key of `entry` under `version`.
    pub fn key(&self, version: u64, entry: &str) -> String {
        format!("{}:{version}:{entry}", self.prefix)
    }

    /// Invalidates every entry: `INCR` the version.
    ///
    /// # Errors
    ///
    /// As [`classify`].
    pub fn bump(&self, conn: &Connection) -> Result<(), ApiError> {
        conn.incr(&self.version_key())
            .map(drop)
            .map_err(|e| classify(e, "INCR"))
    }

    /// Stores `value` for `entry` under `version`, with the family's TTL.
    ///
    /// # Errors
    ///
    /// As [`classify`].
    pub fn put(
        &self,
        conn: &Connection,
        version: u64,
        entry: &str,
        value: &[u8],
    ) -> Result<(), ApiError> {
        set_with_ttl(conn, &self.key(version, entry), value, self.ttl_secs)
    }

    /// Bumps the version, logging instead of failing: for writers whose
    /// change is already committed, where Redis being down must not turn a
    /// success into an error (entries then expire within the TTL, and
    /// while Redis is down nobody reads them).
    pub fn bump_or_log(&self) {
        if let Err(err) = connect().and_then(|conn| self.bump(&conn)) {
            eprintln!("cache {}: could not invalidate: {err}", self.prefix);
        }
    }
}
