//! Cache-aside reads of the catalog in Redis.
//!
//! A read looks up the answer under the catalog's current version
//! ([`kit::cache::PRODUCTS`]); on a miss it asks Postgres and stores the
//! serialized answer. Every write (here, and the orders function's stock
//! reservations) bumps the version before it answers, so no client reads a
//! price or stock older than a write it saw succeed. Redis trouble never
//! fails a read: it is answered from Postgres (and says so in `x-cache`).

use kit::ApiError;
use kit::cache::{self, PRODUCTS};

/// How a read was served, for the `x-cache` response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// From Redis.
    Hit,
    /// From Postgres, now stored in Redis.
    Miss,
    /// From Postgres, with Redis unreachable.
    Bypass,
}

impl Source {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// The entry name of `raw` (a canonical description of the read): its
/// SHA-256, so arbitrary filters make short, safe keys.
pub fn entry(raw: &str) -> String {
    kit::digest::sha256_hex(raw)
}

/// The JSON answer for `entry`: from the cache, or from `load` (stored for
/// the next reader). `load` returning `None` (nothing found) is not
/// cached, so a product created a moment later is seen at once.
///
/// # Errors
///
/// Whatever `load` fails with; Redis failures are logged, never returned.
pub fn read(
    entry: &str,
    load: impl FnOnce() -> Result<Option<Vec<u8>>, ApiError>,
) -> Result<(Option<Vec<u8>>, Source), ApiError> {
    let looked_up =
        cache::connect().and_then(|conn| PRODUCTS.lookup(&conn, entry).map(|hit| (conn, hit)));
    let (conn, version) = match looked_up {
        Ok((_, (_, Some(bytes)))) => return Ok((Some(bytes), Source::Hit)),
        Ok((conn, (version, None))) => (conn, version),
        Err(e) => {
            eprintln!("products cache unavailable, reading Postgres: {e}");
            return Ok((load()?, Source::Bypass));
        }
    };
    let loaded = load()?;
    if let Some(bytes) = &loaded
        && let Err(e) = PRODUCTS.put(&conn, version, entry, bytes)
    {
        eprintln!("products cache write failed: {e}");
    }
    Ok((loaded, Source::Miss))
}
