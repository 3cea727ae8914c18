//! Sinks: where a subscription's events end up. Each is one small
//! implementation of [`Sink`] with its configuration beside it; the
//! delivery policy (retries, backoff, batches, dead letters, per-key order)
//! is the same for all of them and lives in [`crate::dispatch`] and
//! [`crate::pipeline`], so a new destination is one module here.
//!
//! - [`function::FunctionSink`]: a signed CloudEvent POSTed to a function's
//!   route, in this process (`bridge up`) or over HTTP (`bridge relay`).
//! - [`mongo::MongoSink`]: each event a document in a MongoDB collection.

pub mod function;
pub mod mongo;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::event::{OutboxEvent, Signer};
use crate::invoke::Invoker;
use crate::outcome::Attempt;
use crate::subscription::{Destination, Subscription};

/// A destination for events.
pub trait Sink: Send + Sync {
    /// One attempt at handing over `events` (one, or a batch of up to the
    /// subscription's `batch`, in order). Never fails: every failure is an
    /// [`Attempt`] saying whether to retry or dead-letter. A batch is all
    /// or nothing as far as the policy is concerned: after a batch that is
    /// refused or keeps failing, its events are attempted one by one, so a
    /// sink must accept again what it already stored (exactly once in
    /// effect comes from that idempotence).
    fn deliver<'a>(&'a self, events: &'a [OutboxEvent]) -> BoxFuture<'a, Attempt>;
}

/// Builds the sink a subscription names: its function through `invoker`
/// (signing with `signer`), or the MongoDB collection.
///
/// # Errors
/// When the sink's configuration is unusable (a malformed MongoDB URI).
pub async fn build(
    subscription: &Subscription,
    invoker: &Invoker,
    signer: &Signer,
    delivery_timeout: std::time::Duration,
) -> anyhow::Result<Arc<dyn Sink>> {
    Ok(match &subscription.destination {
        Destination::Function { route } => Arc::new(function::FunctionSink {
            invoker: invoker.clone(),
            route: route.clone(),
            signer: signer.clone(),
            timeout: delivery_timeout,
        }),
        Destination::Mongo(config) => {
            Arc::new(mongo::MongoSink::connect(config, delivery_timeout).await?)
        }
    })
}
