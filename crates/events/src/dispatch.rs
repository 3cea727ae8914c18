//! The delivery policy, the same for every source and sink: from events to
//! a final outcome per event. Attempt (one event, or a batch), back off,
//! attempt again, and decide when an event is delivered or dead.

use std::time::Duration;

use super::event::OutboxEvent;
use super::metrics;
use super::outcome::{Attempt, DeliveryOutcome};
use super::sink::Sink;
use super::subscription::Subscription;

/// Retry and timing settings shared by every source.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// First backoff; doubles each attempt.
    pub backoff_base: Duration,
    /// Backoff ceiling (a `Retry-After` may exceed it).
    pub backoff_max: Duration,
    /// Time limit for one delivery.
    pub delivery_timeout: Duration,
    /// Events read per batch.
    pub batch_size: i64,
    /// Subjects delivered in parallel within a batch.
    pub concurrency: usize,
    /// How often to look for events when no notification arrives.
    pub poll_interval: Duration,
    /// Replaces the interval of every subscription that declares
    /// `tick_every_secs` (tests shorten the clock with it).
    pub tick_override: Option<Duration>,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(30),
            batch_size: 512,
            concurrency: 32,
            poll_interval: Duration::from_secs(1),
            tick_override: None,
        }
    }
}

/// How an event ended for one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    /// The sink took it (a function answered 2xx, a document was stored).
    Delivered {
        /// Attempts it took.
        attempts: u32,
    },
    /// Refused or failing past `max_attempts`: goes to the dead letters.
    DeadLetter(DeadLetter),
}

/// Why an event goes to the dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Attempts made (0: the message could not even be read as an event).
    pub attempts: u32,
    /// The function's last status, if any.
    pub status: Option<u16>,
    /// The last error.
    pub error: String,
}

impl DeadLetter {
    /// A broker message that is not a CloudEvent the bridge can read:
    /// nothing can ever deliver it.
    pub fn unreadable() -> Self {
        Self {
            attempts: 0,
            status: None,
            error: "not a CloudEvent".to_string(),
        }
    }

    /// Why it died, as headers for its dead-letter message:
    /// `x-spinmesh-error`, `-status`, `-attempts` and `-subscription`.
    pub fn headers(&self, subscription: &str) -> Vec<(&'static str, String)> {
        vec![
            ("x-spinmesh-error", self.error.clone()),
            (
                "x-spinmesh-status",
                self.status.map(|s| s.to_string()).unwrap_or_default(),
            ),
            ("x-spinmesh-attempts", self.attempts.to_string()),
            ("x-spinmesh-subscription", subscription.to_string()),
        ]
    }
}

/// Exponential backoff with jitter: `base * 2^(n-1)`, capped, then a
/// random 50–100 % of that so retries of many events spread out.
pub fn backoff(config: &DispatchConfig, attempt: u32) -> Duration {
    let exp = config
        .backoff_base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(config.backoff_max);
    capped.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// Attempts `events` (one, or a batch) until the sink takes them, refuses
/// them, or `max_attempts` run out. `Ok` with the attempts it took, or the
/// dead letter the last attempt makes.
async fn attempt_with_retry(
    sink: &dyn Sink,
    subscription: &Subscription,
    events: &[OutboxEvent],
    config: &DispatchConfig,
) -> Result<u32, DeadLetter> {
    let mut attempt_no = 0;
    loop {
        attempt_no += 1;
        let attempt: Attempt = sink.deliver(events).await;
        match attempt.outcome() {
            DeliveryOutcome::Delivered => return Ok(attempt_no),
            DeliveryOutcome::Retry { after } if attempt_no < subscription.max_attempts => {
                metrics::retried(&subscription.name);
                let wait = after.unwrap_or_default().max(backoff(config, attempt_no));
                tracing::warn!(
                    subscription = %subscription.name,
                    event = %events[0].id,
                    events = events.len(),
                    attempt = attempt_no,
                    error = attempt.error.as_deref().unwrap_or(""),
                    retry_in_ms = wait.as_millis() as u64,
                    "delivery failed; retrying"
                );
                tokio::time::sleep(wait).await;
            }
            DeliveryOutcome::Retry { .. } | DeliveryOutcome::DeadLetter => {
                return Err(DeadLetter {
                    attempts: attempt_no,
                    status: attempt.status,
                    error: attempt.error.unwrap_or_else(|| "refused".to_string()),
                });
            }
        }
    }
}

/// Delivers `events` (in order) to the subscription's sink and returns
/// each one's outcome, in the same order. With `batch` above 1,
/// consecutive events go in batches of up to that many, each retried as a
/// whole; a batch the sink refuses or keeps failing on is delivered again
/// one event at a time, so only the events that fail alone are
/// dead-lettered.
pub async fn deliver_all(
    sink: &dyn Sink,
    subscription: &Subscription,
    events: &[OutboxEvent],
    config: &DispatchConfig,
) -> Vec<Final> {
    let mut finals = Vec::with_capacity(events.len());
    for chunk in events.chunks(subscription.batch.max(1)) {
        if chunk.len() > 1 {
            match attempt_with_retry(sink, subscription, chunk, config).await {
                Ok(attempts) => {
                    finals.extend(chunk.iter().map(|_| Final::Delivered { attempts }));
                    continue;
                }
                Err(dead) => tracing::warn!(
                    subscription = %subscription.name,
                    events = chunk.len(),
                    error = %dead.error,
                    "batch not accepted; delivering its events one by one"
                ),
            }
        }
        for event in chunk {
            let one = std::slice::from_ref(event);
            finals.push(
                match attempt_with_retry(sink, subscription, one, config).await {
                    Ok(attempts) => Final::Delivered { attempts },
                    Err(dead) => Final::DeadLetter(dead),
                },
            );
        }
    }
    finals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let config = DispatchConfig {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..DispatchConfig::default()
        };
        for _ in 0..100 {
            let first = backoff(&config, 1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff(&config, 3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            assert!(backoff(&config, 30) <= Duration::from_secs(1));
        }
    }
}
