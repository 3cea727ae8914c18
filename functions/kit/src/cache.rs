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

/// The values of `keys` (`None` where unset), in one `MGET` round trip.
///
/// # Errors
///
/// As [`classify`]; a reply of the wrong shape is a 500.
pub fn get_many<const N: usize>(
    conn: &Connection,
    keys: [&str; N],
) -> Result<[Option<Vec<u8>>; N], ApiError> {
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
    let mut values = reply.into_iter().map(|value| match value {
        redis::RedisResult::Nil => None,
        redis::RedisResult::Binary(bytes) => Some(bytes),
        redis::RedisResult::Status(text) => Some(text.into_bytes()),
        redis::RedisResult::Int64(n) => Some(n.to_string().into_bytes()),
    });
    Ok(std::array::from_fn(|_| values.next().flatten()))
}

/// A family of cache entries invalidated all at once by bumping one
/// counter (a versioned key scheme).
///
/// Every entry is stored with the family's version at the time it was
/// filled (`<version>\n<value>` under `<prefix>:entry:<entry>`), and a read
/// fetches the current version and the entry in one `MGET`: the entry is
/// a hit only if it was filled under the current version. A write that
/// changes what any entry could show only has to `INCR` the version, so
/// invalidation is O(1) even for list pages whose keys nobody could
/// enumerate. It is race-free in the direction that matters: a reader
/// that filled an entry from data older than a write did so under the
/// old version, which no longer matches once the writer has bumped it,
/// and the writer bumps before it answers.
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

    /// The key `entry` is stored under.
    pub fn key(&self, entry: &str) -> String {
        format!("{}:entry:{entry}", self.prefix)
    }

    /// The current version (0 before the first bump) and `entry`'s value
    /// if it was filled under that version, in one round trip.
    ///
    /// # Errors
    ///
    /// As [`classify`]; a version that is not a number is a 500.
    pub fn lookup(
        &self,
        conn: &Connection,
        entry: &str,
    ) -> Result<(u64, Option<Vec<u8>>), ApiError> {
        let args = [
            RedisParameter::Binary(self.version_key().into_bytes()),
            RedisParameter::Binary(self.key(entry).into_bytes()),
        ];
        let reply = conn
            .execute("MGET", &args)
            .map_err(|e| classify(e, "MGET cache lookup"))?;
        let mut reply = reply.into_iter();
        let version = match reply.next() {
            Some(redis::RedisResult::Binary(b)) => {
                std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok())
            }
            Some(redis::RedisResult::Nil) => Some(0),
            _ => None,
        }
        .ok_or_else(|| ApiError::Internal(anyhow!("{} is not a number", self.version_key())))?;
        let value = match reply.next() {
            Some(redis::RedisResult::Binary(stored)) => filled_under(version, stored),
            _ => None,
        };
        Ok((version, value))
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

    /// Stores `value` for `entry` as filled under `version`, with the
    /// family's TTL.
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
        let mut stored = format!("{version}\n").into_bytes();
        stored.extend_from_slice(value);
        set_with_ttl(conn, &self.key(entry), &stored, self.ttl_secs)
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

/// The value of a stored entry if it was filled under `version`.
fn filled_under(version: u64, mut stored: Vec<u8>) -> Option<Vec<u8>> {
    let newline = stored.iter().position(|&b| b == b'\n')?;
    let filled: u64 = std::str::from_utf8(&stored[..newline]).ok()?.parse().ok()?;
    // In place: the value is the whole answer body, often kilobytes.
    (filled == version).then(|| {
        stored.drain(..=newline);
        stored
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_counts_only_under_the_version_it_was_filled_under() {
        assert_eq!(
            filled_under(3, b"3\n{\"a\":1}".to_vec()),
            Some(b"{\"a\":1}".to_vec())
        );
        assert_eq!(filled_under(4, b"3\n{}".to_vec()), None);
        assert_eq!(filled_under(0, b"0\n".to_vec()), Some(Vec::new()));
        assert_eq!(filled_under(3, b"garbage".to_vec()), None);
        assert_eq!(PRODUCTS.key("item:x"), "spinmesh:products:entry:item:x");
    }
}
