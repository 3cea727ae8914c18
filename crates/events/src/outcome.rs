//! What one delivery attempt means for the event: the single outcome type
//! every sink reports and the delivery policy acts on, whatever the source
//! (embedded, Kafka, AMQP).

use std::time::Duration;

/// The result of one attempt, as the sink reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// HTTP status, when a function answered at all (sinks that are not
    /// HTTP have none).
    pub status: Option<u16>,
    /// `Retry-After`, when the function sent one.
    pub retry_after: Option<Duration>,
    /// A short description when it did not succeed.
    pub error: Option<String>,
    outcome: DeliveryOutcome,
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
    /// A function's answer: 2xx delivered; 408, 409, 429 and 5xx (traps
    /// and timeouts are the host's 500) are retried; any other 4xx is
    /// dead-lettered at once.
    pub fn answered(status: u16, retry_after: Option<Duration>, error: Option<String>) -> Self {
        let outcome = match status {
            200..=299 => DeliveryOutcome::Delivered,
            408 | 409 | 429 | 500.. => DeliveryOutcome::Retry { after: retry_after },
            _ => DeliveryOutcome::DeadLetter,
        };
        Self {
            status: Some(status),
            retry_after,
            error,
            outcome,
        }
    }

    /// Stored or delivered.
    pub fn delivered() -> Self {
        Self {
            status: None,
            retry_after: None,
            error: None,
            outcome: DeliveryOutcome::Delivered,
        }
    }

    /// No answer, or a failure that may pass (a connection lost, a
    /// timeout): worth retrying.
    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            status: None,
            retry_after: None,
            error: Some(error.into()),
            outcome: DeliveryOutcome::Retry { after: None },
        }
    }

    /// The sink will never take this: dead-letter it.
    pub fn refused(error: impl Into<String>) -> Self {
        Self {
            status: None,
            retry_after: None,
            error: Some(error.into()),
            outcome: DeliveryOutcome::DeadLetter,
        }
    }

    /// What to do next.
    pub fn outcome(&self) -> DeliveryOutcome {
        self.outcome.clone()
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

    #[test]
    fn statuses_map_to_outcomes() {
        let cases = [
            (200, DeliveryOutcome::Delivered),
            (204, DeliveryOutcome::Delivered),
            (400, DeliveryOutcome::DeadLetter),
            (404, DeliveryOutcome::DeadLetter),
            (422, DeliveryOutcome::DeadLetter),
            (408, DeliveryOutcome::Retry { after: None }),
            (409, DeliveryOutcome::Retry { after: None }),
            (429, DeliveryOutcome::Retry { after: None }),
            (500, DeliveryOutcome::Retry { after: None }),
            (503, DeliveryOutcome::Retry { after: None }),
        ];
        for (status, expected) in cases {
            assert_eq!(
                Attempt::answered(status, None, None).outcome(),
                expected,
                "{status}"
            );
        }
        assert_eq!(
            Attempt::failed("timeout").outcome(),
            DeliveryOutcome::Retry { after: None }
        );
        let later = Some(Duration::from_secs(3));
        assert_eq!(
            Attempt::answered(503, later, None).outcome(),
            DeliveryOutcome::Retry { after: later }
        );
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("999999"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
