//! The one reconnect loop of the event path: every part that holds a
//! connection (sources, the relay, the outbox listener and announcer) runs
//! its work in rounds through [`reconnecting`], so an outage pauses it and
//! a recovery resumes it the same way everywhere. It also keeps
//! [`crate::health`] told whether each part is up.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::dispatch::{DispatchConfig, backoff};
use super::health;

/// A round that ran this long was healthy: the next failure starts the
/// backoff from the beginning again.
const HEALTHY_ROUND: Duration = Duration::from_secs(60);

/// Runs `round` until it returns `Ok` or `shutdown` turns true. After an
/// error it logs why (naming `what`) and waits a backoff that grows with
/// consecutive failures, capped at the sixth step, before the next round.
/// A round that runs [`health::UP_AFTER`] reports `what` up; a failed one
/// reports it down; the end reports it gone.
pub async fn reconnecting<F, Fut>(
    what: &str,
    config: &DispatchConfig,
    shutdown: &watch::Receiver<bool>,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut failures = 0;
    let mut stop = shutdown.clone();
    while !*stop.borrow() {
        let started = Instant::now();
        let attempt = round();
        tokio::pin!(attempt);
        let outcome = tokio::select! {
            outcome = &mut attempt => outcome,
            () = tokio::time::sleep(health::UP_AFTER) => {
                health::up(what);
                attempt.await
            }
        };
        match outcome {
            Ok(()) => break,
            Err(err) => {
                health::down(what, &err);
                if started.elapsed() > HEALTHY_ROUND {
                    failures = 0;
                }
                failures += 1;
                let wait = backoff(config, failures.min(6));
                tracing::warn!(
                    error = %format!("{err:#}"),
                    retry_in_ms = wait.as_millis() as u64,
                    "{what} interrupted; reconnecting"
                );
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
    health::gone(what);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn retries_until_a_round_succeeds() {
        let config = DispatchConfig {
            backoff_base: Duration::from_millis(1),
            ..DispatchConfig::default()
        };
        let (_tx, rx) = watch::channel(false);
        let rounds = AtomicU32::new(0);
        reconnecting("test", &config, &rx, || async {
            if rounds.fetch_add(1, Ordering::SeqCst) < 3 {
                anyhow::bail!("down");
            }
            Ok(())
        })
        .await;
        assert_eq!(rounds.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn shutdown_ends_the_wait_between_rounds() {
        let config = DispatchConfig {
            backoff_base: Duration::from_secs(3600),
            backoff_max: Duration::from_secs(3600),
            ..DispatchConfig::default()
        };
        let (tx, rx) = watch::channel(false);
        let stopping = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send(true).unwrap();
        };
        let run = reconnecting("test", &config, &rx, || async { anyhow::bail!("down") });
        tokio::time::timeout(
            Duration::from_secs(10),
            futures::future::join(run, stopping),
        )
        .await
        .expect("shutdown ends the backoff");
    }
}
