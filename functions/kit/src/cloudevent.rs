//! Receiving an event: a signed CloudEvent in HTTP binary mode.
//!
//! The bridge delivers each event as a `POST` whose headers carry the
//! CloudEvents attributes (`ce-specversion: 1.0`, `ce-id`, `ce-type`,
//! `ce-source`, and usually `ce-subject` and `ce-time`) and whose body is
//! the event's JSON `data`, signed in the `spinmesh-signature` header. The
//! signature scheme, the header names and the batch limits are the delivery
//! contract in `spinmesh-delivery`, which the bridge compiles too.
//!
//! [`receive`] checks the signature first (401 when missing, malformed,
//! wrong, or more than [`MAX_SKEW_SECONDS`] away from now), then the
//! attributes (400 when missing or invalid), so an unsigned caller learns
//! nothing about the expected shape.
//!
//! A subscription declared with `batch = N` may also get CloudEvents batch
//! mode: `content-type: application/cloudevents-batch+json`, a JSON array
//! of structured events (`specversion`, `id`, `type`, `source`, `subject`,
//! `time`, `data`), signed the same way with the literal `batch` in place
//! of the id. [`receive_all`] accepts either form.

use spin_sdk::http::Request;
use spinmesh_delivery::header as ce;
pub use spinmesh_delivery::{
    BATCH_CONTENT_TYPE, BATCH_SIGNATURE_ID, MAX_BATCH, MAX_BATCH_BYTES, MAX_SKEW_SECONDS,
    SIGNATURE_HEADER, sign,
};
use uuid::Uuid;

use crate::config;
use crate::domain::Timestamp;
use crate::json::MAX_BODY_BYTES;
use crate::problem::ApiError;

/// A verified, parsed delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    /// `ce-id`: unique per event; the idempotency key.
    pub id: Uuid,
    /// `ce-type`, e.g. `user.registered`.
    pub kind: String,
    /// `ce-source`, e.g. `/auth`.
    pub source: String,
    /// `ce-subject`: the aggregate id, when the producer set one.
    pub subject: Option<String>,
    /// `ce-time`: when the change happened, when the producer set it.
    pub time: Option<Timestamp>,
    /// The body: the event's JSON data.
    pub data: serde_json::Value,
}

impl CloudEvent {
    /// `data.<field>` as text when it is a non-empty string or a number.
    pub fn data_text(&self, field: &str) -> Option<String> {
        match self.data.get(field)? {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The data read as `T` (a payload type with its version's fields).
    ///
    /// # Errors
    ///
    /// 422 naming the field when the data does not have `T`'s shape: the
    /// bridge dead-letters such an event at once instead of retrying it.
    pub fn data_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_path_to_error::deserialize(&self.data).map_err(|err| {
            let path = err.path().to_string();
            let field = if path == "." {
                "data".to_owned()
            } else {
                format!("data.{path}")
            };
            ApiError::invalid(field, err.inner().to_string())
        })
    }
}

/// Verifies and parses the delivery in `req` with the configured secret.
///
/// # Errors
///
/// 401 on a missing, malformed, forged or stale signature; 400 on missing or
/// invalid attributes or a body that is not JSON; 413 on an oversized body;
/// 500 when `bridge_signing_secret` is not set.
pub fn receive(req: &Request) -> Result<CloudEvent, ApiError> {
    let secret = config::get(config::BRIDGE_SIGNING_SECRET)?;
    let header = |name: &str| req.header(name).and_then(|v| v.as_str());
    verify(
        secret.as_bytes(),
        header(SIGNATURE_HEADER),
        header(ce::ID).unwrap_or_default(),
        req.body(),
        spinmesh_delivery::unix_now(),
    )?;
    parse(header, req.body())
}

/// Verifies and parses a delivery of one event or of a batch.
///
/// # Errors
///
/// As [`receive`]; for a batch also 400 when the body is not an array of
/// valid events, and 413 past [`MAX_BATCH`] events or [`MAX_BATCH_BYTES`].
pub fn receive_all(req: &Request) -> Result<Vec<CloudEvent>, ApiError> {
    let header = |name: &str| req.header(name).and_then(|v| v.as_str());
    let batch =
        header("content-type").is_some_and(|ct| ct.trim_start().starts_with(BATCH_CONTENT_TYPE));
    if !batch {
        return Ok(vec![receive(req)?]);
    }
    let secret = config::get(config::BRIDGE_SIGNING_SECRET)?;
    verify(
        secret.as_bytes(),
        header(SIGNATURE_HEADER),
        BATCH_SIGNATURE_ID,
        req.body(),
        spinmesh_delivery::unix_now(),
    )?;
    parse_batch(req.body())
}

/// Parses a batch body: a JSON array of structured CloudEvents.
///
/// # Errors
///
/// 400 when it is not such an array; 413 when it is too big.
pub fn parse_batch(body: &[u8]) -> Result<Vec<CloudEvent>, ApiError> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BATCH_BYTES,
        });
    }
    let items: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(body)
        .map_err(|e| {
            ApiError::BadRequest(format!("a batch must be a JSON array of events: {e}"))
        })?;
    if items.len() > MAX_BATCH {
        return Err(ApiError::PayloadTooLarge { limit: MAX_BATCH });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, mut item)| {
            let data = item.remove("data").unwrap_or(serde_json::Value::Null);
            let text = |name: &str| {
                let key = name.strip_prefix("ce-").unwrap_or(name);
                item.get(key).and_then(serde_json::Value::as_str)
            };
            let mut event = attributes(text).map_err(|e| match e {
                ApiError::BadRequest(msg) => ApiError::BadRequest(format!("event {i}: {msg}")),
                other => other,
            })?;
            event.data = data;
            Ok(event)
        })
        .collect()
}

/// Checks `signature` (the header value) over `t.id.body` at time `now`.
///
/// # Errors
///
/// 401 when the signature is missing, malformed, wrong or stale.
pub fn verify(
    secret: &[u8],
    signature: Option<&str>,
    id: &str,
    body: &[u8],
    now: u64,
) -> Result<(), ApiError> {
    spinmesh_delivery::verify(secret, signature, id, body, now)
        .map_err(|why| ApiError::Unauthorized(format!("{SIGNATURE_HEADER}: {why}")))
}

/// Parses the attributes from `header` and the data from `body`.
///
/// # Errors
///
/// 400 when an attribute is missing or invalid or the body is not JSON;
/// 413 when the body exceeds [`MAX_BODY_BYTES`].
pub fn parse<'h>(
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
) -> Result<CloudEvent, ApiError> {
    let mut event = attributes(header)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    event.data = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("the event data is not valid JSON: {e}")))?
    };
    Ok(event)
}

/// The attributes, looked up by their binary-mode header names; `data`
/// is left null.
fn attributes<'h>(header: impl Fn(&str) -> Option<&'h str>) -> Result<CloudEvent, ApiError> {
    let bad = |msg: String| ApiError::BadRequest(msg);
    let required = |name: &str| {
        header(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad(format!("the {name} header is required")))
    };
    let optional = |name: &str| header(name).map(str::trim).filter(|v| !v.is_empty());

    let version = required(ce::SPECVERSION)?;
    if version != "1.0" {
        return Err(bad(format!(
            "unsupported ce-specversion {version:?}; expected 1.0"
        )));
    }
    let id = Uuid::parse_str(required(ce::ID)?).map_err(|_| bad("ce-id must be a UUID".into()))?;
    let kind = required(ce::TYPE)?.to_owned();
    let source = required(ce::SOURCE)?.to_owned();
    let subject = optional(ce::SUBJECT).map(str::to_owned);
    let time = optional(ce::TIME)
        .map(|t| Timestamp::parse_rfc3339(t).map_err(|e| bad(format!("ce-time {e}"))))
        .transpose()?;
    Ok(CloudEvent {
        id,
        kind,
        source,
        subject,
        time,
        data: serde_json::Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret";
    const ID: &str = "6f1c1f5e-2b8e-4a39-9d53-0d7c1a0e7b11";
    const BODY: &[u8] = br#"{"version":1,"user_id":"u1"}"#;
    const NOW: u64 = 1_714_564_800;

    fn headers(name: &str) -> Option<&'static str> {
        match name {
            "ce-specversion" => Some("1.0"),
            "ce-id" => Some(ID),
            "ce-type" => Some("user.registered"),
            "ce-source" => Some("/auth"),
            "ce-subject" => Some("u1"),
            "ce-time" => Some("2024-05-01T12:00:00Z"),
            _ => None,
        }
    }

    fn status(signature: Option<&str>, id: &str, body: &[u8]) -> u16 {
        verify(SECRET, signature, id, body, NOW).map_or_else(|e| e.status(), |()| 200)
    }

    #[test]
    fn a_good_signature_verifies() {
        let sig = sign(SECRET, NOW - 10, ID, BODY);
        assert_eq!(status(Some(&sig), ID, BODY), 200);
        assert!(sig.starts_with(&format!("t={},v1=", NOW - 10)));
    }

    #[test]
    fn every_refusal_is_401_and_says_why() {
        // The cases themselves are the contract's (`spinmesh-delivery`);
        // here: each refusal becomes a 401 naming the header and the reason.
        let good = sign(SECRET, NOW, ID, BODY);
        let stale = sign(SECRET, NOW - MAX_SKEW_SECONDS - 1, ID, BODY);
        let forged = sign(b"another-secret", NOW, ID, BODY);
        for (signature, why) in [
            (None, "missing"),
            (Some("v1=abc"), "malformed"),
            (Some(stale.as_str()), "timestamp outside the allowed window"),
            (Some(forged.as_str()), "does not match"),
        ] {
            match verify(SECRET, signature, ID, BODY, NOW) {
                Err(ApiError::Unauthorized(msg)) => {
                    assert_eq!(msg, format!("{SIGNATURE_HEADER}: {why}"));
                }
                other => panic!("{why}: {other:?}"),
            }
        }
        assert_eq!(status(Some(&good), ID, b"{}"), 401, "body changed");
    }

    #[test]
    fn attributes_and_data_parse() {
        let event = parse(headers, BODY).unwrap();
        assert_eq!(event.id.to_string(), ID);
        assert_eq!(event.kind, "user.registered");
        assert_eq!(event.source, "/auth");
        assert_eq!(event.subject.as_deref(), Some("u1"));
        assert_eq!(
            event.time.unwrap().to_rfc3339(),
            "2024-05-01T12:00:00.000000Z"
        );
        assert_eq!(event.data_text("user_id").as_deref(), Some("u1"));
        assert_eq!(event.data_text("version").as_deref(), Some("1"));
        assert_eq!(event.data_text("missing"), None);
    }

    #[test]
    fn missing_or_invalid_attributes_are_400() {
        let cases: &[(&str, Option<&'static str>, &str)] = &[
            ("ce-specversion", None, "no specversion"),
            ("ce-specversion", Some("0.3"), "old specversion"),
            ("ce-id", None, "no id"),
            ("ce-id", Some("42"), "id not a uuid"),
            ("ce-type", None, "no type"),
            ("ce-source", Some(" "), "blank source"),
            ("ce-time", Some("yesterday"), "bad time"),
        ];
        for (name, value, why) in cases {
            let header = |n: &str| if n == *name { *value } else { headers(n) };
            let err = parse(header, BODY).unwrap_err();
            assert_eq!(err.status(), 400, "{why}");
        }
        assert_eq!(
            parse(headers, b"{nope").unwrap_err().status(),
            400,
            "bad JSON"
        );
    }

    #[test]
    fn subject_and_time_are_optional() {
        let header = |n: &str| match n {
            "ce-subject" | "ce-time" => None,
            _ => headers(n),
        };
        let event = parse(header, b"").unwrap();
        assert_eq!((event.subject, event.time), (None, None));
        assert!(event.data.is_null());
    }

    #[test]
    fn a_batch_parses_in_order_and_names_the_bad_event() {
        let body = serde_json::json!([
            {"specversion": "1.0", "id": ID, "type": "user.registered", "source": "/auth",
             "subject": "u1", "time": "2024-05-01T12:00:00Z", "data": {"user_id": "u1"}},
            {"specversion": "1.0", "id": "7f1c1f5e-2b8e-4a39-9d53-0d7c1a0e7b11",
             "type": "user.logged_in", "source": "/auth", "data": null},
        ])
        .to_string();
        let events = parse_batch(body.as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id.to_string(), ID);
        assert_eq!(events[0].subject.as_deref(), Some("u1"));
        assert_eq!(events[0].data_text("user_id").as_deref(), Some("u1"));
        assert_eq!(events[1].kind, "user.logged_in");
        assert!(events[1].time.is_none());

        let bad = serde_json::json!([
            {"specversion": "1.0", "id": ID, "type": "a", "source": "/a"},
            {"specversion": "1.0", "id": "42", "type": "a", "source": "/a"},
        ])
        .to_string();
        match parse_batch(bad.as_bytes()) {
            Err(ApiError::BadRequest(msg)) => assert!(msg.starts_with("event 1:"), "{msg}"),
            other => panic!("{other:?}"),
        }
        for not_a_batch in [&b"{}"[..], b"[1]", b"nope"] {
            assert_eq!(parse_batch(not_a_batch).unwrap_err().status(), 400);
        }
        let too_many = format!("[{}]", vec!["{}"; MAX_BATCH + 1].join(","));
        assert_eq!(parse_batch(too_many.as_bytes()).unwrap_err().status(), 413);
    }

    #[test]
    fn a_batch_signature_binds_the_literal_batch() {
        let body = b"[]";
        let sig = sign(SECRET, NOW, BATCH_SIGNATURE_ID, body);
        assert_eq!(status(Some(&sig), BATCH_SIGNATURE_ID, body), 200);
        assert_eq!(status(Some(&sig), ID, body), 401);
    }
}
