//! `bridge replay`: deliver one subscription's events again, from the
//! start of the outbox.
//!
//! The outbox is the system of record for events (rows are never deleted),
//! so a subscription can always be replayed from it, whichever transport
//! carries its live events: a replay reads the outbox directly, in commit
//! order, and delivers every event the subscription wants through the same
//! delivery policy as live traffic (batches, per-subject order, retries,
//! dead letters into `bridge_dead_letters`). The live subscription is not
//! paused and its position is untouched.
//!
//! What a replay changes is the handler's business. Handlers that claim
//! event ids (`processed_events`) answer a replayed event as a duplicate
//! and change nothing; a projection that applies events by revision (the
//! posts function's author profiles) takes whatever it is missing, which is
//! how a wiped or new projection is rebuilt.

use std::sync::Arc;

use super::dispatch::DispatchConfig;
use super::embedded::Batches;
use super::event::Signer;
use super::invoke::Invoker;
use super::outbox::OutboxScan;
use super::pipeline::Delivery;
use super::sink;
use super::subscription::Subscription;
use spinmesh_config::database::Database;

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Outbox rows read.
    pub read: u64,
    /// Events the subscription wants, delivered or dead-lettered.
    pub wanted: u64,
    /// Of those, dead-lettered.
    pub dead_lettered: u64,
}

impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read {} outbox event(s); delivered {} of the subscription's, dead-lettered {}",
            self.read,
            self.wanted - self.dead_lettered,
            self.dead_lettered
        )
    }
}

/// Replays `subscription` from the start of the outbox in `database`.
///
/// # Errors
/// When the database fails (reading, or recording a dead letter). Events
/// delivered before that stay delivered; running the replay again is safe.
pub async fn run(
    database: Database,
    subscription: Subscription,
    invoker: Invoker,
    signer: Signer,
    config: DispatchConfig,
) -> anyhow::Result<ReplayReport> {
    let mut scan = OutboxScan::open(&database).await?;
    let limit = config.batch_size;
    let sink = sink::build(
        &subscription,
        &invoker,
        &signer,
        &database,
        config.delivery_timeout,
    )
    .await?;
    let delivery = Arc::new(Delivery {
        subscription: subscription.clone(),
        sink,
        config,
    });
    let batches = Batches::new(&delivery, &database);
    let mut report = ReplayReport::default();
    let result = loop {
        let page = match scan.next_page(limit).await {
            Ok(page) => page,
            Err(err) => break Err(err),
        };
        if page.is_empty() {
            break Ok(report);
        }
        report.read += page.len() as u64;
        report.wanted += page
            .iter()
            .filter(|e| subscription.wants(&e.event_type))
            .count() as u64;
        match batches.deliver(&page).await {
            Ok(settled) => report.dead_lettered += settled.dead_lettered as u64,
            Err(err) => break Err(err),
        }
    };
    batches.close().await;
    result
}
