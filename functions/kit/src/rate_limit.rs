//! Request quotas counted in Redis, so they hold across instances and hosts.
//!
//! Each [`Policy`] is a fixed window: `quota` requests per `window_secs`
//! per subject (a client address, an account). Windows are aligned to the
//! Unix epoch, so every host agrees which window a moment belongs to and
//! the window's number is part of the counter's key: counting a request
//! is one atomic `INCR` of that key, one round trip, and the counter's
//! expiry (the end of its window, plus a second for clock skew between
//! hosts) is set by the request that created it. Nothing else is read:
//! the answer's `reset` is the window's end by the clock. If the process
//! dies between the `INCR` and that `EXPIRE`, the key of a window that is
//! already over stays behind (a few bytes; it is never counted again).
//!
//! Why not a Lua script (`EVAL` incrementing and reading the TTL at once):
//! it cost the trivial `/auth/health` 37 % of its requests/s where a bare
//! `INCR` costs 19 % (`cargo bench --bench http`, median of five rounds) —
//! on a two-core machine, Redis running Lua shares the cores with the
//! host. Fixed windows cost one key per subject and window and give exact
//! numbers for the headers; the price is that a client can spend two
//! quotas around a window's edge, which a gateway limit of 100 per 15
//! minutes tolerates.
//!
//! Answers advertise the policies and what is left of them in the
//! `RateLimit-Policy` and `RateLimit` fields of the IETF httpapi draft
//! (`"address";q=100;w=900` and `"address";r=42;t=517`).

use spin_sdk::http::Response;
use spin_sdk::redis::RedisParameter;

use crate::cache;
use crate::config::{self, ConfigError};
use crate::problem::ApiError;

/// Requests per window per client address (`0` turns limiting off).
pub const REQUESTS: &str = "rate_limit_requests";
/// The window, in seconds, of every policy.
pub const WINDOW_SECONDS: &str = "rate_limit_window_seconds";
/// Login and password attempts per window, per address and per account.
pub const LOGIN_REQUESTS: &str = "rate_limit_login_requests";
/// How many reverse proxies in front of the host append `X-Forwarded-For`.
pub const TRUSTED_PROXIES: &str = "rate_limit_trusted_proxies";

/// The defaults: 100 requests per 15 minutes per address, 10 login attempts.
pub const DEFAULT_REQUESTS: u64 = 100;
/// 15 minutes.
pub const DEFAULT_WINDOW_SECONDS: u64 = 900;
/// Login and password attempts per window.
pub const DEFAULT_LOGIN_REQUESTS: u64 = 10;

const KEY_PREFIX: &str = "spinmesh:ratelimit:";

/// One quota: `quota` requests per `window_secs`, named in the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The name clients see in `RateLimit-Policy`.
    pub name: &'static str,
    /// Requests allowed per window.
    pub quota: u64,
    /// The window, in seconds.
    pub window_secs: u64,
}

/// The configured policies, read from the Spin variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Every public request, per client address; `None` when off.
    pub address: Option<Policy>,
    /// Login and password attempts, per address and per account; `None`
    /// when off.
    pub login: Option<Policy>,
}

impl Limits {
    /// The limits the variables configure (defaults for unset ones); the
    /// login policy only when `with_login` (each variable read is a host
    /// call, on every request).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a value that is not a whole number.
    pub fn from_variables(with_login: bool) -> Result<Self, ConfigError> {
        let requests = config::number(REQUESTS, DEFAULT_REQUESTS)?;
        let login = if with_login {
            config::number(LOGIN_REQUESTS, DEFAULT_LOGIN_REQUESTS)?
        } else {
            0
        };
        if requests == 0 && login == 0 {
            return Ok(Self {
                address: None,
                login: None,
            });
        }
        let window_secs = config::number(WINDOW_SECONDS, DEFAULT_WINDOW_SECONDS)?.max(1);
        let policy = |name, quota| {
            (quota > 0).then_some(Policy {
                name,
                quota,
                window_secs,
            })
        };
        Ok(Self {
            address: policy("address", requests),
            login: policy("login", login),
        })
    }
}

/// How many `X-Forwarded-For` hops to trust.
///
/// # Errors
///
/// [`ConfigError::Invalid`] for a value that is not a whole number.
pub fn trusted_proxies() -> Result<usize, ConfigError> {
    Ok(usize::try_from(config::number(TRUSTED_PROXIES, 0)?).unwrap_or(usize::MAX))
}

/// What one policy looks like after counting this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The policy counted against.
    pub policy: Policy,
    /// Requests in the current window, this one included.
    pub used: u64,
    /// Seconds until the window ends (at least 1).
    pub reset_secs: u64,
}

impl Usage {
    /// Whether this request went over the quota.
    pub fn exceeded(&self) -> bool {
        self.used > self.policy.quota
    }

    /// Requests left in the window.
    pub fn remaining(&self) -> u64 {
        self.policy.quota.saturating_sub(self.used)
    }
}

/// Every policy a request was counted against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quotas(pub Vec<Usage>);

impl Quotas {
    /// Counts one request against each `(policy, subject)`: an `INCR` each
    /// (and the `EXPIRE` of a window it opens).
    ///
    /// # Errors
    ///
    /// 503 when Redis is unreachable; 500 when it answers with the wrong
    /// type.
    pub fn count(redis: &cache::Connection, counted: &[(Policy, &str)]) -> Result<Self, ApiError> {
        let now = spinmesh_delivery::unix_now();
        let mut usages = Vec::with_capacity(counted.len());
        for (policy, subject) in counted {
            let window = Window::at(now, policy.window_secs);
            let key = key(policy, window.index, subject);
            let used = redis
                .incr(&key)
                .map_err(|e| cache::classify(e, "counting a rate limit"))?;
            if used == 1 {
                let ttl = i64::try_from(window.reset_secs + 1).unwrap_or(i64::MAX);
                let args = [
                    RedisParameter::Binary(key.into_bytes()),
                    RedisParameter::Int64(ttl),
                ];
                redis
                    .execute("EXPIRE", &args)
                    .map_err(|e| cache::classify(e, "expiring a rate limit window"))?;
            }
            usages.push(Usage {
                policy: *policy,
                used: u64::try_from(used).unwrap_or_default(),
                reset_secs: window.reset_secs,
            });
        }
        Ok(Self(usages))
    }

    /// 429 when a quota is spent, retryable when the last spent window ends.
    ///
    /// # Errors
    ///
    /// [`ApiError::TooManyRequests`].
    pub fn check(&self) -> Result<(), ApiError> {
        match self
            .0
            .iter()
            .filter(|u| u.exceeded())
            .map(|u| u.reset_secs)
            .max()
        {
            Some(retry_after) => Err(ApiError::TooManyRequests { retry_after }),
            None => Ok(()),
        }
    }

    /// The `RateLimit-Policy` and `RateLimit` values; `None` when nothing
    /// was counted.
    pub fn header_values(&self) -> Option<(String, String)> {
        if self.0.is_empty() {
            return None;
        }
        let policies = self
            .0
            .iter()
            .map(|u| {
                format!(
                    "\"{}\";q={};w={}",
                    u.policy.name, u.policy.quota, u.policy.window_secs
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let state = self
            .0
            .iter()
            .map(|u| {
                format!(
                    "\"{}\";r={};t={}",
                    u.policy.name,
                    u.remaining(),
                    u.reset_secs
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        Some((policies, state))
    }

    /// Adds the two fields to `response`.
    pub fn stamp(&self, response: &mut Response) {
        if let Some((policy, state)) = self.header_values() {
            response.set_header("ratelimit-policy", policy);
            response.set_header("ratelimit", state);
        }
    }
}

/// The epoch-aligned window a moment falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// Windows since the epoch.
    index: u64,
    /// Seconds until it ends (at least 1).
    reset_secs: u64,
}

impl Window {
    fn at(now_secs: u64, window_secs: u64) -> Self {
        let window_secs = window_secs.max(1);
        let index = now_secs / window_secs;
        Self {
            index,
            reset_secs: (index + 1) * window_secs - now_secs,
        }
    }
}

/// The counter's key: the whole policy (so a changed quota or window
/// starts fresh, and differently configured deployments sharing a Redis do
/// not spend each other's quotas), the window and the subject.
fn key(policy: &Policy, window: u64, subject: &str) -> String {
    format!(
        "{KEY_PREFIX}{}:{}:{}:{window}:{subject}",
        policy.name, policy.quota, policy.window_secs
    )
}

/// The per-account subject of a login attempt: the SHA-256 of the
/// lower-cased email, so keys do not spell addresses out.
pub fn account_subject(email: &str) -> String {
    crate::digest::sha256_hex(email.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: Policy = Policy {
        name: "address",
        quota: 100,
        window_secs: 900,
    };

    fn usage(policy: Policy, used: u64, reset_secs: u64) -> Usage {
        Usage {
            policy,
            used,
            reset_secs,
        }
    }

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        // (now, window) → (index, reset), why.
        let cases = [
            ((0, 900), (0, 900), "the first second of a window"),
            ((899, 900), (0, 1), "its last second"),
            ((900, 900), (1, 900), "the next one"),
            ((1_000_000, 1), (1_000_000, 1), "one-second windows"),
            ((5, 0), (5, 1), "a zero window counts as one second"),
        ];
        for ((now, window), (index, reset_secs), why) in cases {
            assert_eq!(
                Window::at(now, window),
                Window { index, reset_secs },
                "{why}"
            );
        }
    }

    #[test]
    fn the_hundredth_request_passes_and_the_next_is_refused() {
        assert!(Quotas(vec![usage(ADDRESS, 100, 10)]).check().is_ok());
        let err = Quotas(vec![usage(ADDRESS, 101, 10)]).check().unwrap_err();
        assert_eq!(err.status(), 429);
        assert!(err.headers().contains(&("retry-after".into(), "10".into())));
    }

    #[test]
    fn retry_after_waits_for_the_last_spent_window() {
        let login = Policy {
            name: "login",
            quota: 10,
            window_secs: 900,
        };
        let quotas = Quotas(vec![usage(ADDRESS, 101, 30), usage(login, 11, 400)]);
        let err = quotas.check().unwrap_err();
        assert!(
            err.headers()
                .contains(&("retry-after".into(), "400".into()))
        );
    }

    #[test]
    fn headers_follow_the_httpapi_draft() {
        let quotas = Quotas(vec![usage(ADDRESS, 58, 517)]);
        let (policy, state) = quotas.header_values().unwrap();
        assert_eq!(policy, "\"address\";q=100;w=900");
        assert_eq!(state, "\"address\";r=42;t=517");
        let over = Quotas(vec![usage(ADDRESS, 250, 3)]);
        assert_eq!(over.header_values().unwrap().1, "\"address\";r=0;t=3");
        assert_eq!(Quotas::default().header_values(), None);
    }

    #[test]
    fn keys_separate_policies_and_subjects() {
        let other_window = Policy {
            window_secs: 60,
            ..ADDRESS
        };
        let other_quota = Policy {
            quota: 5,
            ..ADDRESS
        };
        let k = |policy: &Policy, window, subject| key(policy, window, subject);
        assert_eq!(
            k(&ADDRESS, 7, "1.2.3.4"),
            "spinmesh:ratelimit:address:100:900:7:1.2.3.4"
        );
        assert_ne!(k(&ADDRESS, 7, "1.2.3.4"), k(&other_window, 7, "1.2.3.4"));
        assert_ne!(k(&ADDRESS, 7, "1.2.3.4"), k(&other_quota, 7, "1.2.3.4"));
        assert_ne!(k(&ADDRESS, 7, "1.2.3.4"), k(&ADDRESS, 8, "1.2.3.4"));
        assert_ne!(k(&ADDRESS, 7, "1.2.3.4"), k(&ADDRESS, 7, "1.2.3.5"));
        assert_eq!(account_subject(" A@x.io "), account_subject("a@x.io"));
    }
}
