//! Ed25519 key pairs for JWT signing, in the form the Spin variables take:
//! `jwt_private_key` is the standard base64 of the 64-byte key pair (seed
//! then public key), `jwt_public_key` the base64 of the 32-byte public key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A freshly generated signing key pair, encoded for Spin variables.
#[derive(Clone)]
pub struct JwtKeys {
    /// Value for `jwt_private_key` (secret).
    pub private_key: String,
    /// Value for `jwt_public_key`.
    pub public_key: String,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("private_key", &"<redacted>")
            .field("public_key", &self.public_key)
            .finish()
    }
}

impl JwtKeys {
    /// Generates a new pair from the OS random source.
    pub fn generate() -> Self {
        let pair = ed25519_compact::KeyPair::generate();
        Self {
            private_key: STANDARD.encode(pair.sk.as_ref()),
            public_key: STANDARD.encode(pair.pk.as_ref()),
        }
    }

    /// `N` bytes from the OS random source (via the key generator's RNG).
    pub fn random_bytes<const N: usize>() -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(32) {
            let seed = ed25519_compact::Seed::generate();
            chunk.copy_from_slice(&seed[..chunk.len()]);
        }
        out
    }

    /// The pair as `SPIN_VARIABLE_*` assignments, ready for a shell or `.env`.
    pub fn as_env(&self) -> String {
        format!(
            "SPIN_VARIABLE_JWT_PRIVATE_KEY={}\nSPIN_VARIABLE_JWT_PUBLIC_KEY={}\n",
            self.private_key, self.public_key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_64_byte_pair_and_32_byte_public_key() {
        let keys = JwtKeys::generate();
        let sk = STANDARD.decode(&keys.private_key).unwrap();
        let pk = STANDARD.decode(&keys.public_key).unwrap();
        assert_eq!(sk.len(), 64);
        assert_eq!(pk.len(), 32);
        assert_eq!(&sk[32..], &pk[..], "the pair ends with its public key");
        assert!(!format!("{keys:?}").contains(&keys.private_key));
    }
}
