//! Which offset a consumer may store. Events of different subjects in one
//! partition finish out of order, so a partition's position is the lowest
//! offset still being handled (or one past the highest seen when none is):
//! a restart replays what was unfinished and never skips it.

use std::collections::{BTreeSet, HashMap};

/// A message's place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// A topic and partition number.
pub type Partition = (String, i32);

#[derive(Debug, Default)]
struct PartitionState {
    pending: BTreeSet<i64>,
    next: i64,
    stored: i64,
}

/// Offsets in flight, per partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<Partition, PartitionState>,
    in_flight: usize,
}

impl OffsetTracker {
    /// A message was handed out for handling.
    pub fn started(&mut self, at: &Position) {
        let p = self
            .partitions
            .entry((at.topic.clone(), at.partition))
            .or_default();
        if p.pending.insert(at.offset) {
            self.in_flight += 1;
        }
        p.next = p.next.max(at.offset + 1);
    }

    /// A message is finished with (delivered, filtered out or
    /// dead-lettered). Returns the offset to store (the next one to read
    /// after a restart) when the partition's position moved forward.
    pub fn finished(&mut self, at: &Position) -> Option<i64> {
        let p = self.partitions.get_mut(&(at.topic.clone(), at.partition))?;
        if p.pending.remove(&at.offset) {
            self.in_flight -= 1;
        }
        let position = p.pending.first().copied().unwrap_or(p.next);
        (position > p.stored).then(|| {
            p.stored = position;
            position
        })
    }

    /// Messages handed out and not finished.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Messages of `partitions` handed out and not finished.
    pub fn pending_in(&self, partitions: &[Partition]) -> usize {
        partitions
            .iter()
            .filter_map(|p| self.partitions.get(p))
            .map(|p| p.pending.len())
            .sum()
    }

    /// Drops what is known of `partitions` (handed to another consumer):
    /// their unfinished messages no longer count, and should the
    /// partitions come back, they start from what the group committed.
    pub fn forget(&mut self, partitions: &[Partition]) {
        for p in partitions {
            if let Some(gone) = self.partitions.remove(p) {
                self.in_flight -= gone.pending.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, offset: i64) -> Position {
        Position {
            topic: "t".into(),
            partition,
            offset,
        }
    }

    #[test]
    fn position_waits_for_the_oldest_unfinished_message() {
        let mut t = OffsetTracker::default();
        for o in 10..14 {
            t.started(&at(0, o));
        }
        t.started(&at(1, 3));
        assert_eq!(t.in_flight(), 5);
        // 11 and 12 finish first: 10 is still running, nothing to store.
        assert_eq!(t.finished(&at(0, 11)), Some(10));
        assert_eq!(t.finished(&at(0, 12)), None);
        // 10 finishes: everything up to 13 (still running) is done.
        assert_eq!(t.finished(&at(0, 10)), Some(13));
        assert_eq!(t.finished(&at(0, 13)), Some(14));
        // Partitions are independent.
        assert_eq!(t.finished(&at(1, 3)), Some(4));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn redelivered_and_unknown_offsets_do_not_confuse_the_count() {
        let mut t = OffsetTracker::default();
        t.started(&at(0, 5));
        t.started(&at(0, 5));
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.finished(&at(0, 5)), Some(6));
        assert_eq!(t.finished(&at(0, 5)), None);
        assert_eq!(t.finished(&at(7, 1)), None);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn forgotten_partitions_stop_counting_and_start_over() {
        let mut t = OffsetTracker::default();
        t.started(&at(0, 40));
        t.started(&at(0, 41));
        t.started(&at(1, 7));
        let zero = [("t".to_string(), 0)];
        assert_eq!(t.pending_in(&zero), 2);
        assert_eq!(t.pending_in(&[("t".to_string(), 1)]), 1);
        t.forget(&zero);
        assert_eq!((t.pending_in(&zero), t.in_flight()), (0, 1));
        // A late answer for a forgotten partition stores nothing.
        assert_eq!(t.finished(&at(0, 40)), None);
        // Given back later, it is read from the committed offset again.
        t.started(&at(0, 38));
        assert_eq!(t.finished(&at(0, 38)), Some(39));
    }
}
