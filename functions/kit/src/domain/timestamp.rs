//! A point in time, as clients and CloudEvents send it.

use std::fmt;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};

/// A UTC instant. Parsed from RFC 3339 text or Unix seconds, rendered as
/// RFC 3339 with microseconds (`2024-05-01T12:00:00.000000Z`), which
/// Postgres reads back exactly with `$n::timestamptz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Parses RFC 3339 text (any offset; converted to UTC) of an instant
    /// in the years 1 to 9999 UTC.
    ///
    /// RFC 3339 allows year 0000, and an offset can carry an instant in
    /// year 1 or 9999 across the year boundary; Postgres refuses year 0
    /// (there is none) and [`Timestamp::to_rfc3339`] would render year
    /// 10000 with a sign, so both are refused here, as the client's error.
    ///
    /// # Errors
    ///
    /// A message for the client when `raw` is not RFC 3339 or out of range.
    pub fn parse_rfc3339(raw: &str) -> Result<Self, &'static str> {
        let utc = DateTime::parse_from_rfc3339(raw.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| "must be an RFC 3339 date-time such as 2024-05-01T12:00:00Z")?;
        if (1..=9999).contains(&utc.year()) {
            Ok(Self(utc))
        } else {
            Err("must be a date-time in the years 0001 to 9999 (UTC)")
        }
    }

    /// Interprets `seconds` (fractions allowed) since the Unix epoch.
    ///
    /// # Errors
    ///
    /// A message for the client when `seconds` is not finite or out of range.
    pub fn from_unix_seconds(seconds: f64) -> Result<Self, &'static str> {
        const OUT_OF_RANGE: &str = "must be Unix seconds between 0 and year 9999";
        // Year 9999 keeps every value inside what Postgres and RFC 3339 accept.
        if !seconds.is_finite() || !(0.0..253_402_300_800.0).contains(&seconds) {
            return Err(OUT_OF_RANGE);
        }
        // In range, so the casts below are exact enough and cannot overflow.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let (whole, nanos) = (
            seconds.trunc() as i64,
            ((seconds.fract() * 1e9).round() as u32).min(999_999_999),
        );
        DateTime::from_timestamp(whole, nanos)
            .map(Self)
            .ok_or(OUT_OF_RANGE)
    }

    /// The current time by the host's wall clock.
    pub fn now() -> Self {
        Self(DateTime::<Utc>::from(std::time::SystemTime::now()))
    }

    /// The RFC 3339 UTC rendering with microseconds.
    pub fn to_rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_normalised_to_utc_micros() {
        let t = Timestamp::parse_rfc3339("2024-05-01T14:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-01T12:00:00.000000Z");
        let first = Timestamp::parse_rfc3339("0001-01-01T00:00:00Z").unwrap();
        assert_eq!(first.to_rfc3339(), "0001-01-01T00:00:00.000000Z");
        let last = Timestamp::parse_rfc3339("9999-12-31T23:59:59.999999Z").unwrap();
        assert_eq!(last.to_rfc3339(), "9999-12-31T23:59:59.999999Z");
    }

    #[test]
    fn unix_seconds_convert() {
        let t = Timestamp::from_unix_seconds(1_714_564_800.5).unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-01T12:00:00.500000Z");
    }

    #[test]
    fn nonsense_is_rejected() {
        for raw in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-05-01",
            "0000-06-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:00:00-02:00",
        ] {
            assert!(Timestamp::parse_rfc3339(raw).is_err(), "{raw:?}");
        }
        for secs in [-1.0, f64::NAN, f64::INFINITY, 1e15] {
            assert!(Timestamp::from_unix_seconds(secs).is_err(), "{secs}");
        }
    }
}
