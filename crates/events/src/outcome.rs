//! What one delivery attempt means for the event: the single outcome type
//! every source (embedded, Kafka, AMQP) acts on.

use std::time::Duration;

/// The result of one attempt, as the subscriber answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// HTTP status, if the function answered at all.
    pub status: Option<u16>,
    /// `Retry-After`, when the function sent one.
    pub retry_after: Option<Duration>,
    /// A short description when it did not answer 2xx.
    pub error: Option<String>,
}

/// What to do with the event after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// 2xx: acknowledge.
    Delivered,
    /// Worth trying again, after at least `after` when the function said so.
    Retry {
        /// The function's `Retry-After`.
        after: Option<Duration>,
    },
    /// Will never succeed: dead-letter now.
    DeadLetter,
}

impl Attempt {
    /// 2xx delivered; 408, 409, 429, 5xx, timeouts and traps (no status, or
    /// the host's 500) are retried; any other 4xx is dead-lettered at once.
    pub fn outcome(&self) -> DeliveryOutcome {
        match self.status {
            Some(s) if (200..300).contains(&s) => DeliveryOutcome::Delivered,
            Some(408 | 409 | 429) | None => DeliveryOutcome::Retry {
                after: self.retry_after,
            },
            Some(s) if s >= 500 => DeliveryOutcome::Retry {
                after: self.retry_after,
            },
            Some(_) => DeliveryOutcome::DeadLetter,
        }
    }
}

/// Parses `Retry-After` as delay-seconds (HTTP dates are not worth the
/// complexity for an internal hop), capped at an hour.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(status: Option<u16>) -> Attempt {
        Attempt {
            status,
            retry_after: None,
            error: None,
        }
    }

    #[test]
    fn statuses_map_to_outcomes() {
        let cases = [
            (Some(200), DeliveryOutcome::Delivered),
            (Some(204), DeliveryOutcome::Delivered),
            (Some(400), DeliveryOutcome::DeadLetter),
            (Some(404), DeliveryOutcome::DeadLetter),
            (Some(422), DeliveryOutcome::DeadLetter),
            (Some(408), DeliveryOutcome::Retry { after: None }),
            (Some(409), DeliveryOutcome::Retry { after: None }),
            (Some(429), DeliveryOutcome::Retry { after: None }),
            (Some(500), DeliveryOutcome::Retry { after: None }),
            (Some(503), DeliveryOutcome::Retry { after: None }),
            (None, DeliveryOutcome::Retry { after: None }),
        ];
        for (status, expected) in cases {
            assert_eq!(attempt(status).outcome(), expected, "{status:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("999999"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
