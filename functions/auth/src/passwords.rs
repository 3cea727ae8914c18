//! Password hashing: argon2id with OWASP's recommended parameters
//! (19 MiB memory, 2 iterations, 1 lane), stored as a PHC string so the
//! parameters travel with each hash and can be raised later.

use anyhow::{Context, anyhow};
use argon2::password_hash::{self, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use kit::domain::Password;

/// Memory cost in KiB (OWASP: 19 MiB).
const MEMORY_KIB: u32 = 19_456;
/// Iterations.
const ITERATIONS: u32 = 2;
/// Parallelism.
const LANES: u32 = 1;

fn argon2id() -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None)
        .map_err(|e| anyhow!("argon2 parameters: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a new password with a random 16-byte salt.
///
/// # Errors
///
/// When the system RNG or the hasher fails.
pub fn hash(password: &Password) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow!("random salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow!("encoding salt: {e}"))?;
    let hash = argon2id()?
        .hash_password(password.expose().as_bytes(), &salt)
        .map_err(|e| anyhow!("hashing password: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string.
///
/// # Errors
///
/// When the stored hash is unreadable (corrupt data, not a wrong password).
pub fn verify(password: &str, stored: &str) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(stored)
        .map_err(|e| anyhow!("{e}"))
        .context("stored password hash is not a PHC string")?;
    match argon2id()?.verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(e) => Err(anyhow!("verifying password: {e}")),
    }
}

/// Spends the same effort as [`verify`] when there is no user to check
/// against, so response time does not reveal which accounts exist.
pub fn verify_nothing(password: &str) {
    let mut out = [0u8; 32];
    if let Ok(argon2) = argon2id() {
        // The result is irrelevant; only the work matters.
        let _ = argon2.hash_password_into(password.as_bytes(), b"spinmesh-no-user", &mut out);
    }
    std::hint::black_box(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_the_right_password() {
        let password = Password::parse("correct horse".to_owned()).unwrap();
        let stored = hash(&password).unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("correct horse", &stored).unwrap());
        assert!(!verify("wrong horse", &stored).unwrap());
    }

    #[test]
    fn corrupt_hashes_are_errors_not_mismatches() {
        assert!(verify("x", "not-a-phc-string").is_err());
    }
}
