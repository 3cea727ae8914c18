//! The delivery contract between the bridge and the functions it invokes:
//! one definition that both sides compile, so they cannot drift apart.
//!
//! The bridge delivers each event as an HTTP `POST` in CloudEvents binary
//! mode (attributes in `ce-*` headers, the JSON data as the body), or a
//! batch of them in CloudEvents batch mode ([`BATCH_CONTENT_TYPE`]). It signs
//! every delivery:
//!
//! ```text
//! spinmesh-signature: t=<unix seconds>,v1=<lowercase hex HMAC-SHA256>
//! ```
//!
//! The key is the UTF-8 bytes of the shared secret (the Spin variable
//! `bridge_signing_secret`); the signed message is `"{t}.{id}.{body}"`,
//! where `id` is the event's `ce-id`, or [`BATCH_SIGNATURE_ID`] for a batch.
//! Binding the time and the id stops a captured delivery from being
//! replayed later or under another id; the body is covered byte for byte.
//! A receiver accepts several `v1=` entries (any may match) so the secret
//! can be rotated, and rejects a `t` more than [`MAX_SKEW_SECONDS`] from now.
//!
//! This crate has no runtime dependencies (no Spin, no tokio) so that the
//! native bridge and the Wasm guest library use it alike.

#![deny(unsafe_code)]

pub mod seal;
pub mod trace;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying a delivery's signature.
pub const SIGNATURE_HEADER: &str = "spinmesh-signature";

/// Content type of a batch delivery (CloudEvents batch mode).
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// What a batch delivery's signature binds in place of an event id.
pub const BATCH_SIGNATURE_ID: &str = "batch";

/// Most events in one batch delivery: the most a subscription may ask for
/// and the most a receiver accepts.
pub const MAX_BATCH: usize = 1000;

/// Largest batch body a receiver accepts.
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Largest accepted distance between a signature's `t` and now, seconds.
pub const MAX_SKEW_SECONDS: u64 = 300;

/// The CloudEvents attributes a delivery carries, by their HTTP binary-mode
/// header names.
pub mod header {
    /// `specversion`, always `1.0`.
    pub const SPECVERSION: &str = "ce-specversion";
    /// `id`: unique per event, the receivers' idempotency key.
    pub const ID: &str = "ce-id";
    /// `type`, e.g. `user.registered`.
    pub const TYPE: &str = "ce-type";
    /// `source`, e.g. `/auth`.
    pub const SOURCE: &str = "ce-source";
    /// `subject`: the aggregate id, the ordering key.
    pub const SUBJECT: &str = "ce-subject";
    /// `time`, RFC 3339.
    pub const TIME: &str = "ce-time";
    /// `dataschema`, when the producer names one.
    pub const DATASCHEMA: &str = "ce-dataschema";
}

/// Why a signature was refused. Its text is what a receiver may tell the
/// caller: it says what was wrong, never what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("missing")]
    Missing,
    /// Not `t=<digits>,v1=<64 lowercase hex>[,v1=…]`.
    #[error("malformed")]
    Malformed,
    /// `t` too far from now.
    #[error("timestamp outside the allowed window")]
    Stale,
    /// No `v1` matches.
    #[error("does not match")]
    Mismatch,
}

/// The signature header value for a delivery of `body` under `id` at
/// `unix_time`.
pub fn sign(secret: &[u8], unix_time: u64, id: &str, body: &[u8]) -> String {
    let digest = keyed_mac(secret, unix_time, id, body)
        .finalize()
        .into_bytes();
    let mut value = format!("t={unix_time},v1=");
    for byte in digest {
        value.push(char::from(HEX[usize::from(byte >> 4)]));
        value.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    value
}

/// Checks a signature header value (`None` when the header is absent)
/// over `body` delivered under `id`, at `now` (unix seconds).
///
/// # Errors
/// When the signature is missing, malformed, stale, or matches nothing.
pub fn verify(
    secret: &[u8],
    signature: Option<&str>,
    id: &str,
    body: &[u8],
    now: u64,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?;
    let (t, macs) = parse_signature(signature).ok_or(SignatureError::Malformed)?;
    if now.abs_diff(t) > MAX_SKEW_SECONDS {
        return Err(SignatureError::Stale);
    }
    let mac = keyed_mac(secret, t, id, body);
    // `verify_slice` compares in constant time.
    if macs.iter().any(|m| mac.clone().verify_slice(m).is_ok()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Now, in unix seconds: the clock deliveries are stamped with when signed
/// and checked against when verified. A clock that reads before 1970 gives
/// 0, so every signature looks stale and verification fails closed.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn keyed_mac(secret: &[u8], t: u64, id: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `t=<digits>,v1=<64 lowercase hex>[,v1=…]` → `(t, [mac bytes])`.
fn parse_signature(value: &str) -> Option<(u64, Vec<Vec<u8>>)> {
    let mut t = None;
    let mut macs = Vec::new();
    for part in value.split(',') {
        let (key, val) = part.trim().split_once('=')?;
        match key {
            "t" if t.is_none() && !val.is_empty() && val.bytes().all(|b| b.is_ascii_digit()) => {
                t = Some(val.parse().ok()?);
            }
            "v1" => macs.push(decode_hex(val)?),
            _ => return None,
        }
    }
    if macs.is_empty() {
        return None;
    }
    Some((t?, macs))
}

/// Decodes exactly 32 bytes of lowercase hex.
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    let nibble = |c: u8| {
        HEX.iter()
            .position(|&h| h == c)
            .and_then(|n| u8::try_from(n).ok())
    };
    hex.as_bytes()
        .chunks(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret";
    const ID: &str = "6f1c1f5e-2b8e-4a39-9d53-0d7c1a0e7b11";
    const BODY: &[u8] = br#"{"version":1,"user_id":"u1"}"#;
    const NOW: u64 = 1_714_564_800;

    #[test]
    fn known_vector() {
        // HMAC-SHA256(key="key", "1.e.b"), computed independently with Python's hmac module.
        assert_eq!(
            sign(b"key", 1, "e", b"b"),
            "t=1,v1=c5c6f42e2b2d2ebcdc9b742038eb31f9123d76ffa48877ed5dad241cd2d314c3"
        );
    }

    #[test]
    fn a_good_signature_verifies_and_binds_time_id_body_and_key() {
        let sig = sign(SECRET, NOW - 10, ID, BODY);
        assert_eq!(verify(SECRET, Some(&sig), ID, BODY, NOW), Ok(()));
        assert_ne!(sig, sign(SECRET, NOW - 9, ID, BODY));
        assert_ne!(sig, sign(SECRET, NOW - 10, "other", BODY));
        assert_ne!(sig, sign(SECRET, NOW - 10, ID, b"{ }"));
        assert_ne!(sig, sign(b"other", NOW - 10, ID, BODY));
    }

    #[test]
    fn refusals_say_why() {
        use SignatureError::*;
        let good = sign(SECRET, NOW, ID, BODY);
        let mac = &good[good.find("v1").unwrap()..];
        let upper = good
            .to_uppercase()
            .replace("T=", "t=")
            .replace("V1=", "v1=");
        let cases: Vec<(Option<String>, &str, &[u8], SignatureError)> = vec![
            (None, ID, BODY, Missing),
            (Some(String::new()), ID, BODY, Malformed),
            (Some("v1=abc".into()), ID, BODY, Malformed),
            (Some(format!("t={NOW}")), ID, BODY, Malformed),
            (Some(format!("t=x,{mac}")), ID, BODY, Malformed),
            (Some(format!("t={NOW},t={NOW},{mac}")), ID, BODY, Malformed),
            (Some(upper), ID, BODY, Malformed),
            (Some(sign(b"another", NOW, ID, BODY)), ID, BODY, Mismatch),
            (Some(good.clone()), ID, b"{}", Mismatch),
            (Some(good.clone()), BATCH_SIGNATURE_ID, BODY, Mismatch),
            (
                Some(sign(SECRET, NOW - MAX_SKEW_SECONDS - 1, ID, BODY)),
                ID,
                BODY,
                Stale,
            ),
            (
                Some(sign(SECRET, NOW + MAX_SKEW_SECONDS + 1, ID, BODY)),
                ID,
                BODY,
                Stale,
            ),
        ];
        for (signature, id, body, why) in cases {
            assert_eq!(
                verify(SECRET, signature.as_deref(), id, body, NOW),
                Err(why),
                "{signature:?}"
            );
        }
    }

    #[test]
    fn any_of_several_macs_may_match() {
        let good = sign(SECRET, NOW, ID, BODY);
        let old = sign(b"old-secret", NOW, ID, BODY);
        let both = format!("{old}, {}", &good[good.find("v1").unwrap()..]);
        assert_eq!(verify(SECRET, Some(&both), ID, BODY, NOW), Ok(()));
    }
}
