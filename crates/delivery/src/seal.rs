//! Sealed secrets inside events: the one-time tokens that auth mails out
//! (email verification, password reset) travel through the outbox, the
//! broker and every sink that copies events (MongoDB tracking, analytics),
//! so they travel encrypted. Only the producer (auth) and the consumers
//! that must read them (notifications, the bridge's email and SMS sinks)
//! hold the key, the Spin variable [`SEALING_KEY_VARIABLE`].
//!
//! ```text
//! v1.<base64url, no padding: nonce (12 bytes) || ciphertext || tag (16 bytes)>
//! ```
//!
//! The cipher is AES-256-GCM under SHA-256 of the key's UTF-8 bytes (the
//! variable is a string of any length; hashing makes it a 256-bit key).
//! The associated data binds the purpose, by convention the event type, so
//! a sealed reset token cannot be replayed as a verification token.
//!
//! The caller supplies the nonce (random, 12 bytes, never reused with the
//! same key): the bridge and the Wasm guests draw randomness differently,
//! and this crate stays free of both.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The Spin variable holding the sealing key.
pub const SEALING_KEY_VARIABLE: &str = "message_sealing_key";

/// The prefix naming the format's version.
const PREFIX: &str = "v1.";

/// Bytes of nonce in front of the ciphertext.
const NONCE_LEN: usize = 12;

/// Bytes of authentication tag after the ciphertext.
const TAG_LEN: usize = 16;

/// Why a sealed value could not be opened. The text says what was wrong
/// and never echoes the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not `v1.` followed by base64url of at least a nonce and a tag.
    #[error("malformed sealed value")]
    Malformed,
    /// Wrong key, wrong purpose, or altered: GCM cannot tell these apart,
    /// and neither should a caller.
    #[error("sealed value does not authenticate")]
    Unauthentic,
}

/// Seals `plaintext` for `aad` (the purpose, e.g. the event type) under
/// `key` with the caller's `nonce`.
pub fn seal(key: &str, aad: &str, plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> String {
    let payload = Payload {
        msg: plaintext,
        aad: aad.as_bytes(),
    };
    // Encryption fails only past GCM's length limit (64 GiB), far beyond
    // any token; an empty ciphertext then fails to open rather than panics.
    let sealed = cipher(key)
        .encrypt(&Nonce::from(nonce), payload)
        .unwrap_or_default();
    let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Opens a value made by [`seal`] with the same `key` and `aad`.
///
/// # Errors
/// [`SealError::Malformed`] when the value is not in the format,
/// [`SealError::Unauthentic`] when the key or aad differ or it was altered.
pub fn open(key: &str, aad: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
    let encoded = sealed.strip_prefix(PREFIX).ok_or(SealError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| SealError::Malformed)?;
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return Err(SealError::Malformed);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Malformed)?;
    let payload = Payload {
        msg: ciphertext,
        aad: aad.as_bytes(),
    };
    cipher(key)
        .decrypt(&Nonce::from(nonce), payload)
        .map_err(|_| SealError::Unauthentic)
}

/// AES-256-GCM keyed with SHA-256 of the key's UTF-8 bytes.
fn cipher(key: &str) -> Aes256Gcm {
    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a sealing key";
    const AAD: &str = "user.password_reset_requested";
    const TOKEN: &[u8] = b"q8lY2o1h3a4n5c6e7r8y9T0o1k2e3n4X";
    const NONCE: [u8; 12] = [7; 12];

    #[test]
    fn a_sealed_value_opens_with_the_same_key_and_aad() {
        let sealed = seal(KEY, AAD, TOKEN, NONCE);
        assert!(sealed.starts_with("v1."), "{sealed}");
        assert!(!sealed.contains(std::str::from_utf8(TOKEN).unwrap()));
        assert_eq!(open(KEY, AAD, &sealed).unwrap(), TOKEN);
        assert_eq!(open(KEY, AAD, &seal(KEY, AAD, b"", NONCE)).unwrap(), b"");
    }

    #[test]
    fn the_nonce_changes_the_sealed_value() {
        assert_ne!(seal(KEY, AAD, TOKEN, NONCE), seal(KEY, AAD, TOKEN, [8; 12]));
    }

    #[test]
    fn a_wrong_key_does_not_open() {
        let sealed = seal(KEY, AAD, TOKEN, NONCE);
        assert_eq!(
            open("another key", AAD, &sealed),
            Err(SealError::Unauthentic)
        );
    }

    #[test]
    fn a_wrong_aad_does_not_open() {
        let sealed = seal(KEY, AAD, TOKEN, NONCE);
        assert_eq!(
            open(KEY, "user.verification_requested", &sealed),
            Err(SealError::Unauthentic)
        );
    }

    #[test]
    fn a_tampered_value_does_not_open() {
        let sealed = seal(KEY, AAD, TOKEN, NONCE);
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed[3..]).unwrap();
        for at in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[at] ^= 1;
            let tampered = format!("v1.{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert_eq!(
                open(KEY, AAD, &tampered),
                Err(SealError::Unauthentic),
                "byte {at}"
            );
            bytes[at] ^= 1;
        }
        let truncated = format!("v1.{}", URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() - 1]));
        assert_eq!(open(KEY, AAD, &truncated), Err(SealError::Unauthentic));
    }

    #[test]
    fn malformed_values_are_refused_as_malformed() {
        let sealed = seal(KEY, AAD, TOKEN, NONCE);
        let short = format!(
            "v1.{}",
            URL_SAFE_NO_PAD.encode([0u8; NONCE_LEN + TAG_LEN - 1])
        );
        let cases = [
            ("empty", String::new()),
            ("no prefix", sealed[3..].to_owned()),
            ("other version", format!("v2.{}", &sealed[3..])),
            ("padding", format!("{sealed}=")),
            ("not base64url", format!("v1.{}+/", &sealed[3..])),
            ("too short", short),
            ("prefix only", "v1.".to_owned()),
        ];
        for (why, value) in cases {
            assert_eq!(open(KEY, AAD, &value), Err(SealError::Malformed), "{why}");
        }
    }
}
