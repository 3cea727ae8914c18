//! Money: exact decimal amounts with at most two places, and ISO 4217
//! currency codes.
//!
//! An amount is held as a whole number of hundredths (`i64`), never as a
//! float, and crosses every boundary as decimal text: JSON answers carry
//! `"19.99"`, SQL receives `$n::numeric` text and sends `numeric::text`
//! back. Sums are done in SQL (`numeric`) or with checked integer adds.
//!
//! Clients may send a price as a string (`"19.99"`, preferred) or as a JSON
//! number. A number is read by the shortest decimal that round-trips the
//! parsed `f64` (what Rust's `Display` prints). Every amount this type
//! accepts has at most 12 significant digits, which round-trip exactly, so
//! `19.99` is 19.99; a literal with more places than that (`19.999`,
//! `0.1234567`) prints with more than two places and is refused.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The largest amount accepted: what `numeric(12,2)` holds.
pub const MAX_CENTS: i64 = 999_999_999_999;

/// A non-negative amount in hundredths of the currency unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

impl Amount {
    /// Zero.
    pub const ZERO: Self = Self(0);

    /// An amount of `cents` hundredths.
    ///
    /// # Errors
    ///
    /// When `cents` is negative or above [`MAX_CENTS`].
    pub const fn from_cents(cents: i64) -> Result<Self, &'static str> {
        if cents < 0 {
            Err("must not be negative")
        } else if cents > MAX_CENTS {
            Err("must be at most 9999999999.99")
        } else {
            Ok(Self(cents))
        }
    }

    /// The amount in hundredths.
    pub const fn cents(self) -> i64 {
        self.0
    }
}

impl FromStr for Amount {
    type Err = &'static str;

    /// Parses decimal text: digits, optionally a point and one or two more
    /// digits (`19`, `19.9`, `19.99`). No sign, exponent or spaces inside.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        const SHAPE: &str = "must be a decimal amount such as \"19.99\" (at most two places)";
        let raw = raw.trim();
        if raw.starts_with('-') {
            return Err("must not be negative");
        }
        let (whole, frac) = raw.split_once('.').unwrap_or((raw, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SHAPE);
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) || (raw.contains('.') && frac.is_empty()) {
            return Err(SHAPE);
        }
        if frac.len() > 2 {
            return Err("must have at most two decimal places");
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 10 {
            return Err("must be at most 9999999999.99");
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| SHAPE)?
        };
        let frac: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().map_err(|_| SHAPE)? * 10,
            _ => frac.parse().map_err(|_| SHAPE)?,
        };
        Self::from_cents(whole * 100 + frac)
    }
}

impl fmt::Display for Amount {
    /// Always two places: `19.90`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;

        impl Visitor<'_> for AmountVisitor {
            type Value = Amount;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal amount such as \"19.99\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                let cents = i64::try_from(v)
                    .ok()
                    .and_then(|v| v.checked_mul(100))
                    .ok_or_else(|| E::custom("must be at most 9999999999.99"))?;
                Amount::from_cents(cents).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
                if v < 0 {
                    return Err(E::custom("must not be negative"));
                }
                self.visit_u64(v.unsigned_abs())
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Amount, E> {
                if !v.is_finite() {
                    return Err(E::custom("must be a finite amount"));
                }
                if v < 0.0 {
                    return Err(E::custom("must not be negative"));
                }
                // The shortest text that round-trips `v`: what the client
                // wrote, for every amount in range (see the module docs).
                // Very large or small values print with an exponent, which
                // the parser refuses as out of shape.
                format!("{v}").parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(AmountVisitor)
    }
}

/// An ISO 4217 alphabetic code: three upper-case ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Currency {
    /// `USD`.
    fn default() -> Self {
        Self("USD".to_owned())
    }
}

impl FromStr for Currency {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be a three-letter ISO 4217 code in upper case, such as \"USD\"")
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_json(json: &str) -> Result<Amount, String> {
        serde_json::from_str::<Amount>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn amounts_parse_exactly_from_strings_and_numbers() {
        let ok = [
            ("\"19.99\"", 1999),
            ("\"19.9\"", 1990),
            ("\"19\"", 1900),
            ("\"0.01\"", 1),
            ("\"0\"", 0),
            ("\"007.50\"", 750),
            ("19.99", 1999),
            ("0.1", 10),
            ("0.3", 30),
            ("12", 1200),
            ("1234567890.12", 123_456_789_012),
            ("\"9999999999.99\"", MAX_CENTS),
        ];
        for (json, cents) in ok {
            assert_eq!(from_json(json), Ok(Amount(cents)), "{json}");
        }
    }

    #[test]
    fn more_places_negatives_and_junk_are_refused() {
        let bad = [
            "\"19.999\"",
            "19.999",
            "0.123456789",
            "\"-1.00\"",
            "-1",
            "-0.5",
            "\"1e3\"",
            "1e300",
            "\"\"",
            "\".5\"",
            "\"5.\"",
            "\"1 000\"",
            "\"abc\"",
            "\"10000000000.00\"",
            "10000000000",
            "18446744073709551615",
            "true",
            "null",
            "[1]",
        ];
        for json in bad {
            assert!(from_json(json).is_err(), "{json} accepted");
        }
    }

    #[test]
    fn amounts_render_with_two_places() {
        assert_eq!(Amount(1999).to_string(), "19.99");
        assert_eq!(Amount(1990).to_string(), "19.90");
        assert_eq!(Amount(5).to_string(), "0.05");
        assert_eq!(serde_json::to_string(&Amount(100)).unwrap(), "\"1.00\"");
    }

    #[test]
    fn currencies_are_three_upper_case_letters() {
        assert!("USD".parse::<Currency>().is_ok());
        for bad in ["usd", "US", "USDT", "U$D", ""] {
            assert!(bad.parse::<Currency>().is_err(), "{bad}");
        }
    }
}
