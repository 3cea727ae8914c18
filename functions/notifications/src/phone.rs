//! A phone number an SMS can go to.

use std::fmt;

/// An E.164 number: `+`, a country code that does not start with 0, and
/// at most 15 digits in all (ITU-T E.164), e.g. `+14155550123`. Written
/// without spaces or punctuation, as SMS gateways take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

/// Fewest digits accepted: the shortest numbering plans in use.
const MIN_DIGITS: usize = 8;
/// Most digits E.164 allows.
const MAX_DIGITS: usize = 15;

impl Phone {
    /// Parses `raw`.
    ///
    /// # Errors
    ///
    /// A message for the client when `raw` is not an E.164 number.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const SHAPE: &str = "must be an E.164 phone number such as +14155550123";
        let digits = raw.trim().strip_prefix('+').ok_or(SHAPE)?;
        let valid = (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if valid {
            Ok(Self(format!("+{digits}")))
        } else {
            Err(SHAPE)
        }
    }

    /// The number, `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_parse() {
        assert_eq!(
            Phone::parse(" +14155550123 ").unwrap().as_str(),
            "+14155550123"
        );
        assert!(Phone::parse("+4915112345678").is_ok());
    }

    #[test]
    fn anything_else_is_refused() {
        for raw in [
            "",
            "14155550123",
            "+",
            "+0155550123",
            "+1 415 555 0123",
            "+1-415-555-0123",
            "+1234567",
            "+1234567890123456",
            "+1415555012a",
            "++14155550123",
        ] {
            assert!(Phone::parse(raw).is_err(), "{raw:?}");
        }
    }
}
