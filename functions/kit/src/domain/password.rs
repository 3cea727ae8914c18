//! A new password that meets the length policy.

use std::fmt;

/// Shortest accepted password, in characters.
pub const MIN_CHARS: usize = 8;
/// Longest accepted password, in characters; bounds the hashing work.
pub const MAX_CHARS: usize = 1024;

/// A plaintext password chosen at registration. Never printed: its `Debug`
/// is redacted so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks `raw` against the length policy. The password is kept exactly
    /// as typed (no trimming): every character counts.
    ///
    /// # Errors
    ///
    /// A message for the client when the length is out of bounds.
    pub fn parse(raw: String) -> Result<Self, &'static str> {
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err("password must be at least 8 characters");
        }
        if chars > MAX_CHARS {
            return Err("password must be at most 1024 characters");
        }
        Ok(Self(raw))
    }

    /// The plaintext, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_policy_is_enforced_in_characters() {
        let cases = [
            ("", false, "empty"),
            ("1234567", false, "seven characters"),
            ("12345678", true, "eight characters"),
            ("éééééééé", true, "eight multibyte characters"),
            ("        ", true, "spaces count"),
        ];
        for (raw, ok, why) in cases {
            assert_eq!(Password::parse(raw.to_owned()).is_ok(), ok, "{why}");
        }
        assert!(Password::parse("a".repeat(MAX_CHARS)).is_ok());
        assert!(Password::parse("a".repeat(MAX_CHARS + 1)).is_err());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let password = Password::parse("correct horse".to_owned()).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
