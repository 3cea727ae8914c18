//! The host's announcements of its guests' outbox writes.
//!
//! The outbox trigger NOTIFYs once per writing statement, and every NOTIFY
//! holds a cluster-wide lock from just before its transaction commits
//! until the commit is flushed: notifying writers commit one at a time
//! (migration 0012 has the numbers). Inside `bridge up` that is wasted, as
//! the host sees every statement its guests run. So once the event path
//! takes over announcing for a database ([`OutboxWrites::announce_for`]),
//! the host's new sessions on it opt out of the trigger's NOTIFY
//! (`spinmesh.outbox_notify=off`), and after each committed statement
//! that may have written the outbox the host wakes the in-process readers
//! at once and asks for one coalesced NOTIFY for other processes (another
//! replica's dispatcher, `bridge relay`), which the event path sends.

use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

/// Shared between the host (which rings) and the event path (which waits
/// and announces). Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct OutboxWrites {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Wakes every reader waiting in this process.
    readers: Arc<Notify>,
    /// Tells the announcer there is something to announce; a permit is
    /// kept, so writes while it is busy coalesce into its next NOTIFY.
    announcer: Notify,
    /// The database address (as guests open it) whose writes the event
    /// path announces; `None` until it takes over.
    watched: RwLock<Option<String>>,
}

/// The session option that turns the trigger's NOTIFY off.
pub const OPT_OUT: &str = "-c spinmesh.outbox_notify=off";

impl OutboxWrites {
    /// The event path takes over announcing writes to the database at
    /// `address` (the `database_url` guests open): sessions the host opens
    /// to it from now on stay quiet and the host rings instead.
    pub fn announce_for(&self, address: &str) {
        *self
            .inner
            .watched
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(address.to_owned());
    }

    /// Whether writes through a session to `address` are announced by the
    /// event path (so the session opts out of the trigger's NOTIFY).
    pub fn announced(&self, address: &str) -> bool {
        self.inner
            .watched
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            == Some(address)
    }

    /// A guest's statement that may have written the outbox committed.
    pub fn written(&self) {
        self.inner.readers.notify_waiters();
        self.inner.announcer.notify_one();
    }

    /// What in-process readers wait on.
    pub fn readers(&self) -> Arc<Notify> {
        self.inner.readers.clone()
    }

    /// Resolves at the next write not yet announced.
    pub async fn to_announce(&self) {
        self.inner.announcer.notified().await;
    }
}

/// Whether `statement` may have written the outbox or committed a
/// transaction that did: it names the outbox (every `kit::outbox` write
/// does), or it is a `COMMIT`/`END`. Extra wakes cost one read; a missed
/// one costs a poll interval, so this errs towards waking.
pub fn may_write_outbox(statement: &str) -> bool {
    let trimmed = statement.trim_start();
    let starts = |word: &str| {
        trimmed
            .get(..word.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(word))
    };
    starts("commit")
        || starts("end")
        || statement
            .as_bytes()
            .windows(6)
            .any(|w| w.eq_ignore_ascii_case(b"outbox"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_that_may_write_the_outbox() {
        assert!(may_write_outbox(
            "WITH c AS (...) INSERT INTO outbox (id) SELECT 1"
        ));
        assert!(may_write_outbox("insert into OUTBOX values (1)"));
        assert!(may_write_outbox("  COMMIT"));
        assert!(may_write_outbox("end;"));
        assert!(!may_write_outbox("SELECT * FROM products"));
        assert!(!may_write_outbox("UPDATE users SET name = 'x'"));
        assert!(!may_write_outbox(""));
    }

    #[tokio::test]
    async fn a_write_wakes_readers_and_leaves_one_announcement() {
        let writes = OutboxWrites::default();
        let readers = writes.readers();
        let woken = readers.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        writes.written();
        writes.written();
        woken.await;
        // Two writes, one permit: the announcer coalesces them.
        writes.to_announce().await;
        use futures::FutureExt;
        assert!(
            writes.to_announce().now_or_never().is_none(),
            "a second announcement was pending"
        );
    }

    #[test]
    fn only_the_watched_address_is_announced() {
        let writes = OutboxWrites::default();
        assert!(!writes.announced("postgres://a/db"));
        writes.announce_for("postgres://a/db");
        assert!(writes.announced("postgres://a/db"));
        assert!(!writes.announced("postgres://a/other"));
    }
}
