//! A normalised e-mail address.

use std::fmt;

/// Longest address SMTP can carry (RFC 5321 path limit).
const MAX_LEN: usize = 254;
/// Longest local part (RFC 5321).
const MAX_LOCAL_LEN: usize = 64;

/// An e-mail address, trimmed and lowercased, so equal addresses compare
/// equal and the database's unique constraint is case-insensitive.
///
/// Validation is deliberately basic (one `@`, a non-empty local part, a
/// dotted domain, no spaces): the only real check is sending mail to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses and normalises `raw`.
    ///
    /// # Errors
    ///
    /// A message for the client when `raw` is not a plausible address.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("email is required");
        }
        if email.len() > MAX_LEN {
            return Err("email must be at most 254 characters");
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("email must not contain spaces or control characters");
        }
        let mut parts = email.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("email must contain exactly one @");
        };
        if local.is_empty() || local.len() > MAX_LOCAL_LEN {
            return Err("email must have 1 to 64 characters before the @");
        }
        let labels_ok = domain.split('.').all(|label| !label.is_empty());
        if !domain.contains('.') || !labels_ok {
            return Err("email must have a domain like example.com after the @");
        }
        Ok(Self(email))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lowercased() {
        let email = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "ada.lovelace@example.com");
    }

    #[test]
    fn implausible_addresses_are_rejected() {
        let long = format!("{}@example.com", "a".repeat(250));
        let cases = [
            ("", "empty"),
            ("   ", "blank"),
            ("plainaddress", "no @"),
            ("a@b@example.com", "two @"),
            ("@example.com", "empty local part"),
            ("ada@", "empty domain"),
            ("ada@localhost", "domain without a dot"),
            ("ada@example..com", "empty domain label"),
            ("ada@.example.com", "leading dot in domain"),
            ("ada lovelace@example.com", "space inside"),
            (
                "ada@example.com\n",
                "trailing newline is trimmed, so this one passes",
            ),
            (long.as_str(), "too long"),
        ];
        for (raw, why) in cases {
            let passes = why.ends_with("passes");
            assert_eq!(Email::parse(raw).is_ok(), passes, "{why}: {raw:?}");
        }
    }

    #[test]
    fn sql_looking_addresses_are_just_text() {
        let email = Email::parse("x'or'1'='1@example.com").unwrap();
        assert_eq!(email.as_str(), "x'or'1'='1@example.com");
    }
}
