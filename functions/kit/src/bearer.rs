//! Authenticating a request: `Authorization: Bearer <jwt>`, verified, and
//! not revoked.
//!
//! Two kinds of revocation, both checked in the one Redis round trip an
//! authenticated request makes anyway:
//!
//! - one token, by its `jti` (logout): [`revoke`];
//! - every token of an account issued before a password change or reset:
//!   each account has a *token generation* in Postgres, carried by its
//!   tokens as the `gen` claim; raising it and recording the new value
//!   under [`revoked_user_key`] ([`revoke_generations_below`]) turns away
//!   every token of an older generation. A counter rather than a
//!   timestamp, so a token issued in the same clock second as the change
//!   is on the right side of it.

use spin_sdk::http::Request;
use spin_sdk::redis::RedisParameter;
use uuid::Uuid;

use crate::cache;
use crate::config;
use crate::domain::Role;
use crate::jwt::TokenVerifier;
use crate::problem::ApiError;

/// Redis key prefix of revoked access-token ids; entries expire with the token.
pub const REVOKED_JTI_PREFIX: &str = "spinmesh:revoked:jti:";

/// Redis key prefix of an account's lowest valid token generation (the
/// value); an entry lives as long as the tokens it turns away.
pub const REVOKED_USER_PREFIX: &str = "spinmesh:revoked:user:";

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// User id (`sub`).
    pub id: Uuid,
    /// Role at the time the token was issued.
    pub role: Role,
    /// The token's id, for revocation.
    pub jti: String,
    /// The token's expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// The account's token generation the token was issued under.
    pub generation: u64,
}

impl AuthUser {
    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Requires `role`.
    ///
    /// # Errors
    ///
    /// 403 when the caller has another role.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role == role {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("requires the {role} role")))
        }
    }
}

/// Redis key prefix of tokens whose signature has been checked; entries
/// expire with the token.
pub const VERIFIED_PREFIX: &str = "spinmesh:jwt:verified:";

/// Authenticates `req` with the configured public key and Redis denylist.
///
/// Ed25519 verification is the most expensive step of an authenticated
/// request inside a guest (hundreds of microseconds; nothing survives
/// between requests in Spin's instance-per-request model). So the first
/// successful verification of a token is remembered in Redis under the
/// SHA-256 of the whole token until the token expires, and later requests
/// check only the claims. Looking that mark up shares one `MGET` round trip
/// with the denylist check.
///
/// The mark's value is an HMAC of its key under `token_mark_secret`, a
/// secret only the functions hold, and a mark counts only if it verifies:
/// someone who can write to Redis but does not hold the secret cannot make
/// a forged token (say, one claiming `role: admin`) pass. (They can still
/// delete denylist entries; keep Redis private.)
///
/// The same `MGET` reads the token's own revocation and its account's
/// lowest valid generation (see the module docs).
///
/// # Errors
///
/// 401 for a missing, invalid, expired or revoked token; 503 when Redis is
/// down (fail closed: a revoked token must not slip through); 500 when the
/// JWT variables or the mark secret are missing or broken, or the stored
/// generation is not a number.
pub fn authenticate(req: &Request) -> Result<AuthUser, ApiError> {
    let header = req.header("authorization").and_then(|v| v.as_str());
    let token = bearer_token(header)?;
    let verifier = config::token_verifier()?;
    // Claims first: expired or foreign tokens never cost a Redis trip.
    let claims = verifier.inspect(token)?;
    let secret = config::get(config::TOKEN_MARK_SECRET)?;
    let redis = cache::connect()?;
    let verified_key = verified_key(token);
    let [mark, revoked, lowest] = cache::get_many(
        &redis,
        [
            &verified_key,
            &revoked_key(&claims.jti),
            &revoked_user_key(claims.user_id),
        ],
    )?;
    if revoked.is_some() || claims.generation < lowest_generation(lowest.as_deref())? {
        return Err(ApiError::Unauthorized("the token has been revoked".into()));
    }
    let vouched = mark.is_some_and(|mark| mark_matches(secret.as_bytes(), &verified_key, &mark));
    let claims = if vouched {
        claims
    } else {
        let checked = verifier.verify(token)?;
        let ttl = checked
            .expires_at
            .saturating_sub(spinmesh_delivery::unix_now());
        let mark = mark_for(secret.as_bytes(), &verified_key);
        cache::set_with_ttl(&redis, &verified_key, mark.as_bytes(), ttl)?;
        checked
    };
    Ok(AuthUser {
        id: claims.user_id,
        role: claims.role,
        jti: claims.jti,
        exp: claims.expires_at,
        generation: claims.generation,
    })
}

/// The lowest valid generation an account's entry records (0 without one).
///
/// # Errors
///
/// 500 when the entry is not a number (fail closed).
fn lowest_generation(stored: Option<&[u8]>) -> Result<u64, ApiError> {
    let Some(stored) = stored else {
        return Ok(0);
    };
    std::str::from_utf8(stored)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "the revoked-generation entry is not a number"
            ))
        })
}

/// The verification mark's key: the token's SHA-256, so only the exact
/// token that was verified matches.
pub fn verified_key(token: &str) -> String {
    format!("{VERIFIED_PREFIX}{}", crate::digest::sha256_hex(token))
}

/// The mark stored under `key` (a [`verified_key`]): its HMAC under the
/// functions' secret.
pub fn mark_for(secret: &[u8], key: &str) -> String {
    crate::digest::hmac_sha256_hex(secret, key.as_bytes())
}

/// Whether `mark`, found under `key`, was written by a holder of `secret`.
pub fn mark_matches(secret: &[u8], key: &str, mark: &[u8]) -> bool {
    crate::digest::hmac_sha256_matches(secret, key.as_bytes(), mark)
}

/// Verifies a token without the denylist (for callers holding a verifier).
///
/// # Errors
///
/// 401 when the token is refused.
pub fn verify(verifier: &TokenVerifier, header: Option<&str>) -> Result<AuthUser, ApiError> {
    let verified = verifier.verify(bearer_token(header)?)?;
    Ok(AuthUser {
        id: verified.user_id,
        role: verified.role,
        jti: verified.jti,
        exp: verified.expires_at,
        generation: verified.generation,
    })
}

/// Puts the caller's token on the denylist until it would expire anyway.
///
/// # Errors
///
/// 503 when Redis is down.
pub fn revoke(redis: &cache::Connection, user: &AuthUser) -> Result<(), ApiError> {
    let remaining = user.exp.saturating_sub(spinmesh_delivery::unix_now());
    if remaining == 0 {
        return Ok(());
    }
    // One extra second covers the verifier's clock leeway.
    cache::set_with_ttl(redis, &revoked_key(&user.jti), b"1", remaining + 1)
}

/// The denylist key for `jti`.
pub fn revoked_key(jti: &str) -> String {
    format!("{REVOKED_JTI_PREFIX}{jti}")
}

/// The key recording `user_id`'s lowest valid token generation.
pub fn revoked_user_key(user_id: Uuid) -> String {
    format!("{REVOKED_USER_PREFIX}{user_id}")
}

/// Sets the key to `ARGV[1]` unless it already holds a higher generation:
/// two password changes racing may reach Redis in either order, and the
/// recorded generation must only ever rise.
const RAISE_GENERATION: &str = "local current = tonumber(redis.call('GET', KEYS[1]) or '0') \
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end \
return 0";

/// Turns away every access token of `user_id` issued under a generation
/// lower than `generation` (the account's new one, already committed in
/// Postgres), for as long as such a token could still be unexpired.
///
/// # Errors
///
/// 503 when Redis is down.
pub fn revoke_generations_below(
    redis: &cache::Connection,
    user_id: Uuid,
    generation: u64,
) -> Result<(), ApiError> {
    // The tokens' lifetime, plus the verifier's clock leeway and a second.
    let ttl = crate::jwt::ACCESS_TOKEN_TTL_SECS + crate::jwt::LEEWAY_SECS + 1;
    let args = [
        RedisParameter::Binary(RAISE_GENERATION.as_bytes().to_vec()),
        RedisParameter::Int64(1),
        RedisParameter::Binary(revoked_user_key(user_id).into_bytes()),
        RedisParameter::Binary(generation.to_string().into_bytes()),
        RedisParameter::Int64(i64::try_from(ttl).unwrap_or(i64::MAX)),
    ];
    redis
        .execute("EVAL", &args)
        .map(drop)
        .map_err(|e| cache::classify(e, "raising a token generation"))
}

/// Extracts the token from an `Authorization` header value; the scheme is
/// case-insensitive (RFC 7235).
///
/// # Errors
///
/// 401 when the header is absent or not a bearer credential.
pub fn bearer_token(header: Option<&str>) -> Result<&str, ApiError> {
    let header =
        header.ok_or_else(|| ApiError::Unauthorized("a bearer token is required".into()))?;
    let (scheme, token) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized("expected `Authorization: Bearer <token>`".into()))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::Unauthorized(
            "expected `Authorization: Bearer <token>`".into(),
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_extracted() {
        let cases = [
            (Some("Bearer abc.def.ghi"), Some("abc.def.ghi"), "canonical"),
            (
                Some("bearer   abc"),
                Some("abc"),
                "lowercase scheme, extra spaces",
            ),
            (None, None, "no header"),
            (Some(""), None, "empty header"),
            (Some("Bearer"), None, "no token"),
            (Some("Bearer  "), None, "blank token"),
            (Some("Basic dXNlcjpwYXNz"), None, "other scheme"),
            (Some("abc.def.ghi"), None, "no scheme"),
        ];
        for (header, expected, why) in cases {
            assert_eq!(bearer_token(header).ok(), expected, "{why}");
        }
    }

    #[test]
    fn verification_marks_are_per_token() {
        let a = verified_key("a.b.c");
        assert!(a.starts_with(VERIFIED_PREFIX));
        assert_eq!(a.len(), VERIFIED_PREFIX.len() + 64);
        assert_ne!(a, verified_key("a.b.d"));
    }

    #[test]
    fn only_marks_written_with_the_secret_vouch_for_a_token() {
        let key = verified_key("a.b.c");
        let mark = mark_for(b"secret", &key);
        assert!(mark_matches(b"secret", &key, mark.as_bytes()));
        assert!(!mark_matches(b"secret", &key, b"1"), "a bare mark");
        assert!(
            !mark_matches(b"other", &key, mark.as_bytes()),
            "another secret"
        );
        let other_key = verified_key("a.b.d");
        assert!(
            !mark_matches(b"secret", &other_key, mark.as_bytes()),
            "another token's mark"
        );
    }

    #[test]
    fn denylist_keys_are_namespaced() {
        assert_eq!(revoked_key("j1"), "spinmesh:revoked:jti:j1");
        assert_eq!(
            revoked_user_key(Uuid::nil()),
            "spinmesh:revoked:user:00000000-0000-0000-0000-000000000000"
        );
    }

    #[test]
    fn a_missing_generation_entry_revokes_nothing_and_a_broken_one_fails_closed() {
        assert_eq!(lowest_generation(None).unwrap(), 0);
        assert_eq!(lowest_generation(Some(b"3")).unwrap(), 3);
        assert_eq!(lowest_generation(Some(b"x")).unwrap_err().status(), 500);
        assert_eq!(lowest_generation(Some(b"-1")).unwrap_err().status(), 500);
    }

    #[test]
    fn admin_only_routes_forbid_users() {
        let user = AuthUser {
            id: Uuid::nil(),
            role: Role::User,
            jti: "j".into(),
            exp: 0,
            generation: 0,
        };
        assert_eq!(user.require(Role::Admin).unwrap_err().status(), 403);
        assert!(user.require(Role::User).is_ok());
    }
}
