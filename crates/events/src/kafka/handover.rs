//! Giving partitions up cleanly in a rebalance.
//!
//! When the group takes partitions from this consumer (another bridge
//! joined, or this one is leaving), librdkafka calls the rebalance callback
//! before handing them over. Without a hand-over, deliveries still running
//! for those partitions finish after the offsets can no longer be stored,
//! and the new owner delivers them again from the last commit. With it, the
//! callback waits (up to [`KafkaConfig::handover_timeout`]) until every
//! message of the revoked partitions that was handed to the lanes is
//! settled, then commits the stored offsets synchronously, so the new owner
//! starts exactly where this one stopped.
//!
//! The callback runs inside `recv()` on the consumer's task, so waiting
//! blocks that task. On tokio's multi-threaded runtime (the bridge's) it
//! waits in `block_in_place`, which moves the task's queued work (the lanes
//! it woke) to another worker. On a current-thread runtime nothing could
//! run while it blocked, so it commits what is settled without waiting;
//! the rest is redelivered to the new owner, as before.
//!
//! [`KafkaConfig::handover_timeout`]: super::KafkaConfig::handover_timeout

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::offsets::{OffsetTracker, Partition, Position};

/// What one consumer has handed out and not yet settled, shared by its
/// read loop, the acknowledgements from the lanes and its rebalance
/// callback.
#[derive(Default)]
pub struct Progress {
    tracker: Mutex<OffsetTracker>,
    settled: Condvar,
    /// Set once the read loop is gone: nobody will settle what is left,
    /// and the revoke that closing the consumer triggers is not a
    /// hand-over (the loop committed already).
    abandoned: AtomicBool,
}

impl Progress {
    fn tracker(&self) -> MutexGuard<'_, OffsetTracker> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A message was handed to the lanes.
    pub fn started(&self, at: &Position) {
        self.tracker().started(at);
    }

    /// A message is settled: stores its partition's new position through
    /// `store` (under the lock, so a hand-over in progress commits it) and
    /// wakes a waiting hand-over.
    pub fn finished(&self, at: &Position, store: impl FnOnce(i64) -> Result<(), KafkaError>) {
        let mut tracker = self.tracker();
        if let Some(next) = tracker.finished(at)
            && let Err(err) = store(next)
        {
            // The partition was taken away without a hand-over (the
            // consumer was killed, or the wait timed out): its new owner
            // reads from the last commit, so what this consumer delivered
            // since is delivered again (idempotent sinks absorb it).
            tracing::warn!(topic = %at.topic, partition = at.partition, error = %err, "offset not stored; the partition's new owner will redeliver from its last commit");
        }
        drop(tracker);
        self.settled.notify_all();
    }

    /// The read loop is gone; nothing more will be settled.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::SeqCst);
        self.settled.notify_all();
    }

    /// Waits until no message of `partitions` is unsettled, the read loop
    /// is gone, or `deadline` passes. Returns how many are left.
    fn settle(&self, partitions: &[Partition], deadline: Instant) -> usize {
        let mut tracker = self.tracker();
        loop {
            let left = tracker.pending_in(partitions);
            let now = Instant::now();
            if left == 0 || self.abandoned.load(Ordering::SeqCst) || now >= deadline {
                return left;
            }
            tracker = self
                .settled
                .wait_timeout(tracker, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The consumer's librdkafka context: hands revoked partitions over.
pub struct Handover {
    /// The consumer's progress.
    pub progress: std::sync::Arc<Progress>,
    /// Longest wait for revoked partitions' deliveries.
    pub timeout: Duration,
    /// The subscription, for the log and its lag.
    pub subscription: String,
}

impl ClientContext for Handover {
    /// librdkafka's statistics (every [`super::config::STATISTICS_EVERY`]):
    /// the assigned partitions' lag behind their committed offsets is the
    /// subscription's lag in this process.
    fn stats(&self, statistics: Statistics) {
        let behind: i64 = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.iter())
            .filter(|(partition, _)| **partition >= 0)
            .map(|(_, partition)| partition.consumer_lag.max(0))
            .sum();
        crate::metrics::lag(&self.subscription, u64::try_from(behind).unwrap_or(0));
    }
}

impl ConsumerContext for Handover {
    /// A line saying what this consumer reads after a rebalance
    /// (rebalances are rare, and a group that never assigns anything is
    /// otherwise silent).
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(subscription = %self.subscription, partitions = list.count(), "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(err) => {
                tracing::warn!(subscription = %self.subscription, error = %err, "rebalance failed");
            }
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        // The consumer is closing: its read loop already let the lanes
        // finish and committed. Committing again from the close's revoke
        // can leave librdkafka's following unassign waiting forever.
        if self.progress.abandoned.load(Ordering::SeqCst) {
            return;
        }
        let partitions = partitions(revoked);
        if partitions.is_empty() {
            return;
        }
        let waited_for = self.progress.tracker().pending_in(&partitions);
        let deadline = Instant::now() + self.timeout;
        let left = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| self.progress.settle(&partitions, deadline))
            }
            _ => self.progress.settle(&partitions, Instant::now()),
        };
        if left > 0 {
            tracing::warn!(subscription = %self.subscription, unsettled = left, "giving up partitions with deliveries still running; their new owner delivers those again");
        }
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            // Nothing was stored since the last commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(err) => {
                tracing::warn!(subscription = %self.subscription, error = %err, "committing revoked partitions' offsets failed; their new owner redelivers from the last commit");
            }
        }
        self.progress.tracker().forget(&partitions);
        // Rebalances are rare: worth a line each.
        tracing::info!(subscription = %self.subscription, partitions = partitions.len(), waited_for, unsettled = left, "partitions handed over");
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<Partition> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// Stores `next` as the partition's position in `consumer`.
pub fn store<C: Consumer<Handover>>(
    consumer: &C,
    at: &Position,
    next: i64,
) -> Result<(), KafkaError> {
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(&at.topic, at.partition, Offset::Offset(next))?;
    consumer.store_offsets(&offsets)
}
