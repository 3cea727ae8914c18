//! From one event to a final outcome: attempt, back off, attempt again,
//! and decide when the event is delivered or dead.

use std::time::Duration;

use super::event::{OutboxEvent, Signer};
use super::invoke::Invoker;
use super::outcome::{Attempt, DeliveryOutcome};
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
    /// The function answered 2xx.
    Delivered {
        /// Attempts it took.
        attempts: u32,
    },
    /// Refused or failing past `max_attempts`: goes to the dead letters.
    DeadLetter {
        /// Attempts made.
        attempts: u32,
        /// The last status, if any.
        status: Option<u16>,
        /// The last error.
        error: String,
    },
}

impl Final {
    /// Why an event died, as headers for its dead-letter message:
    /// `x-spinmesh-error`, `-status`, `-attempts` and `-subscription`.
    /// Empty for a delivered event.
    pub fn dead_letter_headers(&self, subscription: &str) -> Vec<(&'static str, String)> {
        match self {
            Self::Delivered { .. } => Vec::new(),
            Self::DeadLetter {
                attempts,
                status,
                error,
            } => vec![
                ("x-spinmesh-error", error.clone()),
                (
                    "x-spinmesh-status",
                    status.map(|s| s.to_string()).unwrap_or_default(),
                ),
                ("x-spinmesh-attempts", attempts.to_string()),
                ("x-spinmesh-subscription", subscription.to_string()),
            ],
        }
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

/// Delivers until the event is delivered or must be dead-lettered.
pub async fn deliver_with_retry(
    invoker: &Invoker,
    subscription: &Subscription,
    event: &OutboxEvent,
    signer: &Signer,
    config: &DispatchConfig,
) -> Final {
    let mut attempt_no = 0;
    loop {
        attempt_no += 1;
        let attempt: Attempt = invoker
            .deliver(&subscription.route, event, signer, config.delivery_timeout)
            .await;
        match attempt.outcome() {
            DeliveryOutcome::Delivered => {
                return Final::Delivered {
                    attempts: attempt_no,
                };
            }
            DeliveryOutcome::Retry { after } if attempt_no < subscription.max_attempts => {
                let wait = after.unwrap_or_default().max(backoff(config, attempt_no));
                tracing::warn!(
                    subscription = %subscription.name,
                    event = %event.id,
                    attempt = attempt_no,
                    error = attempt.error.as_deref().unwrap_or(""),
                    retry_in_ms = wait.as_millis() as u64,
                    "delivery failed; retrying"
                );
                tokio::time::sleep(wait).await;
            }
            DeliveryOutcome::Retry { .. } | DeliveryOutcome::DeadLetter => {
                return Final::DeadLetter {
                    attempts: attempt_no,
                    status: attempt.status,
                    error: attempt.error.unwrap_or_else(|| "refused".to_string()),
                };
            }
        }
    }
}

/// Delivers `events` (in order) to the subscription and returns each
/// one's outcome, in the same order. With `batch` above 1, consecutive
/// events go in batches of up to that many, each retried as a whole; a
/// batch the function refuses or keeps failing on is delivered again one
/// event at a time, so only the events that fail alone are dead-lettered.
pub async fn deliver_all(
    invoker: &Invoker,
    subscription: &Subscription,
    events: &[OutboxEvent],
    signer: &Signer,
    config: &DispatchConfig,
) -> Vec<Final> {
    let mut finals = Vec::with_capacity(events.len());
    for chunk in events.chunks(subscription.batch.max(1)) {
        if chunk.len() > 1
            && deliver_batch_with_retry(invoker, subscription, chunk, signer, config).await
        {
            finals.extend(chunk.iter().map(|_| Final::Delivered { attempts: 1 }));
            continue;
        }
        for event in chunk {
            finals.push(deliver_with_retry(invoker, subscription, event, signer, config).await);
        }
    }
    finals
}

/// `true` once a batch is answered 2xx; `false` when it was refused or
/// its attempts ran out.
async fn deliver_batch_with_retry(
    invoker: &Invoker,
    subscription: &Subscription,
    events: &[OutboxEvent],
    signer: &Signer,
    config: &DispatchConfig,
) -> bool {
    for attempt_no in 1..=subscription.max_attempts {
        let attempt = invoker
            .deliver_batch(&subscription.route, events, signer, config.delivery_timeout)
            .await;
        match attempt.outcome() {
            DeliveryOutcome::Delivered => return true,
            DeliveryOutcome::Retry { after } if attempt_no < subscription.max_attempts => {
                let wait = after.unwrap_or_default().max(backoff(config, attempt_no));
                tracing::warn!(
                    subscription = %subscription.name,
                    events = events.len(),
                    attempt = attempt_no,
                    error = attempt.error.as_deref().unwrap_or(""),
                    retry_in_ms = wait.as_millis() as u64,
                    "batch delivery failed; retrying"
                );
                tokio::time::sleep(wait).await;
            }
            DeliveryOutcome::Retry { .. } | DeliveryOutcome::DeadLetter => {
                tracing::warn!(
                    subscription = %subscription.name,
                    events = events.len(),
                    error = attempt.error.as_deref().unwrap_or(""),
                    "batch not accepted; delivering its events one by one"
                );
                return false;
            }
        }
    }
    false
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
