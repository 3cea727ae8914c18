//! The bridge's clock: what Spin functions cannot do for themselves
//! (Spin has no scheduled trigger in the HTTP model), done as an event.
//!
//! A subscription with `tick_every_secs = N` gets a signed `bridge.tick`
//! CloudEvent (`source` `/bridge/clock`, `subject` the subscription, data
//! `{"version": 1}`, a fresh id each time) POSTed to its route every N
//! seconds, through the same invoker as its other deliveries: in-process
//! under `bridge up`, over HTTP under `bridge relay`. A tick is not an
//! outbox event: it is not retried or dead-lettered (the next tick comes
//! anyway), so whatever a function does on a tick must be safe to do
//! again or to skip (the orders function's sweep of unpaid orders is).
//! Every bridge replica ticks; with several, the function runs the sweep
//! more often, which that property makes harmless.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::event::OutboxEvent;
use super::outcome::DeliveryOutcome;
use super::sink::Sink;

/// The event type of a tick.
pub const TICK_TYPE: &str = "bridge.tick";

/// A fresh tick for `subscription`.
pub fn tick(subscription: &str) -> OutboxEvent {
    OutboxEvent {
        position: 0,
        txid: String::new(),
        id: uuid::Uuid::new_v4(),
        source: "/bridge/clock".to_string(),
        event_type: TICK_TYPE.to_string(),
        subject: subscription.to_string(),
        aggregate: "bridge".to_string(),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        dataschema: None,
        data: r#"{"version":1}"#.to_string(),
        traceparent: None,
    }
}

/// Ticks `subscription` every `every` through its `sink` until
/// `shutdown` (the sink's own time limit bounds each tick). A failed tick
/// is logged and not retried.
pub async fn run(
    subscription: String,
    every: Duration,
    sink: Arc<dyn Sink>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let event = tick(&subscription);
        let attempt = sink.deliver(std::slice::from_ref(&event)).await;
        if attempt.outcome() == DeliveryOutcome::Delivered {
            tracing::debug!(%subscription, "tick delivered");
        } else {
            tracing::warn!(
                %subscription,
                status = ?attempt.status,
                error = ?attempt.error,
                "tick failed; the next one follows"
            );
        }
    }
}
