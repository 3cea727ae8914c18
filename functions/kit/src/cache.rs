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
