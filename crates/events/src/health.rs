//! How the event path's connected parts are doing, for `/health`.
//!
//! Every part that holds a connection (sources, the relay, the outbox
//! listener) runs through [`crate::reconnect::reconnecting`], which reports
//! here: a part is up once a round has run [`UP_AFTER`] without failing,
//! down (with the error) when a round fails. The bridge writes a
//! [`snapshot`] to Postgres every few seconds (`bridge_status`), where the
//! functions' `GET /health` reads it: Spin functions cannot reach a broker
//! themselves.
//!
//! The registry is process-wide, like the logs it complements: a part is
//! named by what its reconnect loop logs, and one process runs one event
//! path.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

/// How long a round must run without failing before its part counts as up.
pub const UP_AFTER: Duration = Duration::from_secs(1);

/// One part's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    /// Connected and working.
    pub up: bool,
    /// Why it is down (the last round's error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it last changed, RFC 3339.
    pub since: String,
}

static PARTS: Mutex<BTreeMap<String, Part>> = Mutex::new(BTreeMap::new());

fn parts() -> MutexGuard<'static, BTreeMap<String, Part>> {
    PARTS.lock().unwrap_or_else(|e| e.into_inner())
}

fn set(what: &str, up: bool, error: Option<String>) {
    let mut parts = parts();
    let unchanged = parts
        .get(what)
        .is_some_and(|part| part.up == up && part.error == error);
    if !unchanged {
        let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        parts.insert(what.to_owned(), Part { up, error, since });
    }
}

/// `what` is connected and working.
pub fn up(what: &str) {
    set(what, true, None);
}

/// `what` failed with `error` and is reconnecting.
pub fn down(what: &str, error: &anyhow::Error) {
    set(what, false, Some(format!("{error:#}")));
}

/// `what` stopped for good (shutdown): it no longer counts.
pub fn gone(what: &str) {
    parts().remove(what);
}

/// Every part's state, by name.
pub fn snapshot() -> BTreeMap<String, Part> {
    parts().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_go_up_down_and_away() {
        let name = "health test part";
        up(name);
        assert!(snapshot()[name].up);
        let since = snapshot()[name].since.clone();
        up(name);
        assert_eq!(snapshot()[name].since, since, "no change, same since");
        down(name, &anyhow::anyhow!("refused"));
        let part = &snapshot()[name];
        assert!(!part.up);
        assert_eq!(part.error.as_deref(), Some("refused"));
        gone(name);
        assert!(!snapshot().contains_key(name));
    }
}
