//! SHA-256 as lowercase hex: how tokens, request fingerprints and cache
//! entries are stored and looked up without keeping the input; and
//! HMAC-SHA256 tags for values that only a secret's holders may write.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The SHA-256 of `input`, 64 lowercase hex digits.
pub fn sha256_hex(input: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(input.as_ref()))
}

/// The HMAC-SHA256 of `message` under `key`, 64 lowercase hex digits.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    hex::encode(mac(key, message).finalize().into_bytes())
}

/// Whether `tag` (hex, as [`hmac_sha256_hex`] writes it) is the HMAC of
/// `message` under `key`, compared in constant time.
pub fn hmac_sha256_matches(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    hex::decode(tag).is_ok_and(|tag| mac(key, message).verify_slice(&tag).is_ok())
}

fn mac(key: &[u8], message: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hmac_tags_verify_only_under_their_key_and_message() {
        // RFC 4231 test case 2.
        let tag = hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            tag,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(hmac_sha256_matches(
            b"Jefe",
            b"what do ya want for nothing?",
            tag.as_bytes()
        ));
        assert!(!hmac_sha256_matches(
            b"Jeff",
            b"what do ya want for nothing?",
            tag.as_bytes()
        ));
        assert!(!hmac_sha256_matches(
            b"Jefe",
            b"what do ya want?",
            tag.as_bytes()
        ));
        assert!(!hmac_sha256_matches(
            b"Jefe",
            b"what do ya want for nothing?",
            b"1"
        ));
    }
}
