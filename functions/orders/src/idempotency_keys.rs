//! `Idempotency-Key` for `POST /orders` (IETF httpapi
//! idempotency-key-header draft semantics), per user, kept 24 hours.
//!
//! - First use of a key: [`begin`] claims it with the request's
//!   fingerprint and a short lease; the order placed under it records its
//!   id on the key in the same statement; [`finish`] stores the answer.
//! - The same key and body again: the stored answer (status and body),
//!   and no second order.
//! - The same key with another body: 422.
//! - The same key while the first request is still running: 409.
//! - A claim whose lease ran out with no order (the attempt died before
//!   committing) is free again; one with an order but no stored answer
//!   (it died after committing) answers that order.
//! - A 5xx answer is not stored: the claim is dropped so the client may
//!   retry with the same key.

use kit::ApiError;
use kit::db::{self, Connection, Doing as _, ParameterValue, Statement};
use uuid::Uuid;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Longest accepted key.
pub const MAX_KEY_CHARS: usize = 255;
/// How long a claim holds without an answer before it is presumed dead;
/// longer than any request may run.
const LEASE_SECS: i64 = 60;

/// An idempotency key as sent, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// The key of `raw` (the header value). The draft makes it a
    /// structured-field string (`"abc"`); a bare token is accepted too.
    ///
    /// # Errors
    ///
    /// 400 for an empty key, one over 255 characters or one with
    /// characters outside visible ASCII.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let raw = raw.trim();
        let key = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(raw);
        let ok = !key.is_empty()
            && key.len() <= MAX_KEY_CHARS
            && key.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"');
        if ok {
            Ok(Self(key.to_owned()))
        } else {
            Err(ApiError::BadRequest(format!(
                "the Idempotency-Key header must be 1 to {MAX_KEY_CHARS} visible ASCII characters"
            )))
        }
    }

    /// The key of a raw header value ([`Key::parse`], after checking the
    /// bytes are text).
    ///
    /// # Errors
    ///
    /// As [`Key::parse`].
    pub fn from_header(raw: &[u8]) -> Result<Self, ApiError> {
        Self::parse(std::str::from_utf8(raw).unwrap_or_default())
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The request's fingerprint: SHA-256 of the body's canonical JSON (so
/// whitespace does not matter), hex.
pub fn fingerprint(body: &serde_json::Value) -> String {
    kit::digest::sha256_hex(body.to_string())
}

/// What a key's state says to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key is ours now: place the order.
    Claimed,
    /// Answer this again.
    Replay {
        /// The first answer's status.
        status: u16,
        /// Its body.
        body: String,
    },
    /// The first attempt committed this order but stored no answer.
    Placed(Uuid),
}

/// Claims `key` for this request, or says what the earlier request with
/// it decides.
///
/// # Errors
///
/// 422 when the key was used with another body, 409 while the earlier
/// request is still running, 503/500 on database failure.
pub fn begin(conn: &Connection, user_id: Uuid, key: &Key, hash: &str) -> Result<Begin, ApiError> {
    let claim = Statement::new(format!(
        "INSERT INTO order_idempotency_keys AS k (user_id, key, request_hash, locked_until) \
         VALUES ($1::text::uuid, $2::text, $3::text, now() + make_interval(secs => {LEASE_SECS})) \
         ON CONFLICT (user_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, \
           locked_until = EXCLUDED.locked_until, created_at = now(), order_id = NULL, \
           response_status = NULL, response_body = NULL \
         WHERE k.created_at < now() - interval '24 hours' \
            OR (k.response_status IS NULL AND k.order_id IS NULL AND k.locked_until < now()) \
         RETURNING true"
    ));
    let params = [
        ParameterValue::Str(user_id.to_string()),
        ParameterValue::Str(key.as_str().to_owned()),
        ParameterValue::Str(hash.to_owned()),
    ];
    if conn
        .optional(&claim, &params)
        .doing("claiming an idempotency key")?
        .is_some()
    {
        return Ok(Begin::Claimed);
    }
    let existing = Statement::new(
        "SELECT request_hash, order_id::text, response_status, response_body \
         FROM order_idempotency_keys WHERE user_id = $1::text::uuid AND key = $2::text",
    );
    let row = conn
        .optional(&existing, &params[..2])
        .doing("reading an idempotency key")?
        .ok_or_else(|| ApiError::Conflict("the idempotency key is being recycled; retry".into()))?;
    let stored_hash: String = db::column(&row, 0, "request_hash").map_err(ApiError::Internal)?;
    if stored_hash != hash {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "was already used with a different request body",
        ));
    }
    let order_id: Option<String> = db::column(&row, 1, "order_id").map_err(ApiError::Internal)?;
    let status: Option<i32> = db::column(&row, 2, "response_status").map_err(ApiError::Internal)?;
    let body: Option<String> = db::column(&row, 3, "response_body").map_err(ApiError::Internal)?;
    match (status, body, order_id) {
        (Some(status), Some(body), _) => Ok(Begin::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body,
        }),
        (_, _, Some(order_id)) => Ok(Begin::Placed(
            order_id
                .parse()
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?,
        )),
        _ => Err(ApiError::Conflict(
            "a request with this Idempotency-Key is still in progress".into(),
        )),
    }
}

/// Stores the answer to replay, or drops the claim after a 5xx.
///
/// # Errors
///
/// 503/500 on database failure.
pub fn finish(
    conn: &Connection,
    user_id: Uuid,
    key: &Key,
    status: u16,
    body: &[u8],
) -> Result<(), ApiError> {
    let params = [
        ParameterValue::Str(user_id.to_string()),
        ParameterValue::Str(key.as_str().to_owned()),
    ];
    if status >= 500 {
        conn.execute(
            "DELETE FROM order_idempotency_keys WHERE user_id = $1::text::uuid AND key = $2::text \
             AND response_status IS NULL AND order_id IS NULL",
            &params,
        )
        .doing("releasing an idempotency key")?;
        return Ok(());
    }
    let mut params = params.to_vec();
    params.push(ParameterValue::Int32(i32::from(status)));
    params.push(ParameterValue::Str(
        String::from_utf8_lossy(body).into_owned(),
    ));
    conn.execute(
        "UPDATE order_idempotency_keys SET response_status = $3::integer, response_body = $4::text \
         WHERE user_id = $1::text::uuid AND key = $2::text",
        &params,
    )
    .doing("storing an idempotent answer")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_quoted_or_not() {
        assert_eq!(Key::parse("\"abc-123\"").unwrap().as_str(), "abc-123");
        assert_eq!(Key::parse("abc").unwrap().as_str(), "abc");
        for bad in ["", "\"\"", "a b", "é", &"x".repeat(256)] {
            assert_eq!(Key::parse(bad).unwrap_err().status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_ignore_whitespace_but_not_content() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a": 1, "b": [2]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":[2]}"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":[3]}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
