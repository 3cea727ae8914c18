//! What the event path counts, through the `metrics` facade: events
//! published to a broker, and per subscription the events delivered,
//! retried and dead-lettered, how long each took from its commit to its
//! delivery, and how far each subscription lags; plus the outbox backlog.
//!
//! Counters and the latency histogram are recorded where the outcome is
//! decided ([`crate::relay`], [`crate::dispatch`], [`crate::pipeline`]).
//! Gauges are sampled: the outbox's by the heartbeat ([`crate::status`],
//! which already holds a connection), a broker consumer's lag by the
//! consumer itself (Kafka's statistics, RabbitMQ's queue depth).

use chrono::{DateTime, Utc};
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// Events the outbox relay published and the broker confirmed, by `broker`.
pub const PUBLISHED: &str = "spinmesh_events_published_total";
/// Events a subscription's sink took, by `subscription`.
pub const DELIVERED: &str = "spinmesh_events_delivered_total";
/// Failed attempts that are tried again, by `subscription` (a batch
/// attempt counts once).
pub const RETRIED: &str = "spinmesh_event_retries_total";
/// Events stored in the dead letters, by `subscription`.
pub const DEAD_LETTERED: &str = "spinmesh_events_dead_lettered_total";
/// From an event's commit (its CloudEvent `time`) to its delivery, by
/// `subscription`.
pub const DELIVERY_LATENCY: &str = "spinmesh_event_delivery_latency_seconds";
/// Events waiting for a subscription, by `subscription`: behind its
/// outbox cursor without a broker, in its queue (RabbitMQ) or behind its
/// group's committed offsets (Kafka) with one.
pub const CONSUMER_LAG: &str = "spinmesh_consumer_lag_events";
/// Outbox events not yet published (with a broker) or not yet delivered
/// to the slowest subscription (without one).
pub const OUTBOX_BACKLOG: &str = "spinmesh_outbox_backlog_events";
/// Age of the oldest of those.
pub const OUTBOX_OLDEST: &str = "spinmesh_outbox_oldest_unpublished_age_seconds";

/// Every metric above.
pub const NAMES: &[&str] = &[
    PUBLISHED,
    DELIVERED,
    RETRIED,
    DEAD_LETTERED,
    DELIVERY_LATENCY,
    CONSUMER_LAG,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST,
];

/// Registers the help text of the event path's metrics.
pub fn describe() {
    describe_counter!(
        PUBLISHED,
        Unit::Count,
        "Outbox events published to the broker and confirmed"
    );
    describe_counter!(DELIVERED, Unit::Count, "Events a subscription's sink took");
    describe_counter!(
        RETRIED,
        Unit::Count,
        "Failed delivery attempts that are tried again"
    );
    describe_counter!(
        DEAD_LETTERED,
        Unit::Count,
        "Events stored in the dead letters"
    );
    describe_histogram!(
        DELIVERY_LATENCY,
        Unit::Seconds,
        "Time from an event's commit to its delivery"
    );
    describe_gauge!(
        CONSUMER_LAG,
        Unit::Count,
        "Events waiting for a subscription"
    );
    describe_gauge!(
        OUTBOX_BACKLOG,
        Unit::Count,
        "Outbox events not yet published (or, without a broker, not yet delivered everywhere)"
    );
    describe_gauge!(
        OUTBOX_OLDEST,
        Unit::Seconds,
        "Age of the oldest outbox event not yet published"
    );
}

/// The broker confirmed `count` published events.
pub fn published(broker: &str, count: usize) {
    counter!(PUBLISHED, "broker" => broker.to_owned()).increment(count as u64);
}

/// The sink took an event committed at `time` (RFC 3339); an unreadable
/// time is counted without a latency.
pub fn delivered(subscription: &str, time: &str, now: DateTime<Utc>) {
    counter!(DELIVERED, "subscription" => subscription.to_owned()).increment(1);
    if let Ok(committed) = DateTime::parse_from_rfc3339(time) {
        let took = (now - committed.with_timezone(&Utc))
            .to_std()
            .unwrap_or_default();
        histogram!(DELIVERY_LATENCY, "subscription" => subscription.to_owned())
            .record(took.as_secs_f64());
    }
}

/// An attempt failed and will be made again.
pub fn retried(subscription: &str) {
    counter!(RETRIED, "subscription" => subscription.to_owned()).increment(1);
}

/// An event's dead letter was stored.
pub fn dead_lettered(subscription: &str) {
    counter!(DEAD_LETTERED, "subscription" => subscription.to_owned()).increment(1);
}

/// Events waiting for `subscription`.
pub fn lag(subscription: &str, events: u64) {
    gauge!(CONSUMER_LAG, "subscription" => subscription.to_owned()).set(events as f64);
}

/// The outbox backlog: events and the age of the oldest (0 when none).
pub fn backlog(events: u64, oldest_age_seconds: f64) {
    gauge!(OUTBOX_BACKLOG).set(events as f64);
    gauge!(OUTBOX_OLDEST).set(oldest_age_seconds);
}
