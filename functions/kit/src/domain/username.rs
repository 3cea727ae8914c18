//! A public handle.

use std::fmt;

/// A username: 3 to 32 characters from `[A-Za-z0-9_.-]`. Case is kept for
/// display; uniqueness is case-insensitive (enforced by the database).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Validates `raw` as given (no trimming: a stray space is an error the
    /// user should see, not something to guess about).
    ///
    /// # Errors
    ///
    /// A message for the client when `raw` breaks the rules.
    pub fn parse(raw: String) -> Result<Self, &'static str> {
        let len = raw.chars().count();
        if !(3..=32).contains(&len) {
            return Err("username must be 3 to 32 characters");
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if !raw.chars().all(allowed) {
            return Err("username may only contain letters, digits, '_', '.' and '-'");
        }
        Ok(Self(raw))
    }

    /// The username.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rules() {
        let cases = [
            ("ada", true, "three characters"),
            ("Ada_Lovelace.1815-x", true, "all allowed symbols"),
            (&"a".repeat(32), true, "thirty-two characters"),
            ("ab", false, "too short"),
            (&"a".repeat(33), false, "too long"),
            ("ada lovelace", false, "space"),
            ("ada'; drop table users;--", false, "SQL punctuation"),
            ("adä", false, "non-ASCII letter"),
        ];
        for (raw, ok, why) in cases {
            assert_eq!(Username::parse(raw.to_string()).is_ok(), ok, "{why}");
        }
    }
}
