//! Sinks: where a subscription's events end up. Each is one small
//! implementation of [`Sink`] with its configuration beside it; the
//! delivery policy (retries, backoff, batches, dead letters, per-key order)
//! is the same for all of them and lives in [`crate::dispatch`] and
//! [`crate::pipeline`], so a new destination is one module here.
//!
//! - [`function::FunctionSink`]: a signed CloudEvent POSTed to a function's
//!   route, in this process (`bridge up`) or over HTTP (`bridge relay`).
//! - [`mongo::MongoSink`]: each event a document in a MongoDB collection.
//! - [`smtp::SmtpSink`]: requested emails sent through an SMTP server.
//! - [`sms::SmsSink`]: requested SMS posted to an SMS gateway's webhook.
//!
//! The email and SMS sinks share [`ledger`]: what they sent, once in
//! effect, and their reports back to the notifications function.

pub mod function;
pub mod ledger;
pub mod mongo;
pub mod sms;
pub mod smtp;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::dispatch::DeadLetter;
use crate::event::{OutboxEvent, Signer};
use crate::invoke::Invoker;
use crate::outcome::Attempt;
use crate::subscription::{Destination, Subscription};
use spinmesh_config::database::Database;

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

    /// Told once the delivery policy has stored `event`'s dead letter
    /// (`why`), before the event is acknowledged: a sink that reports
    /// outcomes back (email, SMS) records the failure here. Nothing by
    /// default.
    ///
    /// # Errors
    /// When the sink could not record it: the pipeline tries again with
    /// backoff, holding the event unacknowledged meanwhile, so the hook
    /// must accept being called again for the same event.
    fn dead_lettered<'a>(
        &'a self,
        event: &'a OutboxEvent,
        why: &'a DeadLetter,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        let _ = (event, why);
        Box::pin(futures::future::ready(Ok(())))
    }
}

/// Builds the sink a subscription names: its function through `invoker`
/// (signing with `signer`), the MongoDB collection, or the SMTP server or
/// SMS gateway (which keep their ledger in `database`).
///
/// # Errors
/// When the sink's configuration is unusable (a malformed MongoDB URI, TLS
/// settings that cannot be built).
pub async fn build(
    subscription: &Subscription,
    invoker: &Invoker,
    signer: &Signer,
    database: &Database,
    delivery_timeout: std::time::Duration,
) -> anyhow::Result<Arc<dyn Sink>> {
    let name = || {
        subscription
            .name
            .strip_prefix("sink.")
            .unwrap_or(&subscription.name)
    };
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
        Destination::Smtp(config) => Arc::new(smtp::SmtpSink::new(
            name(),
            config,
            database,
            delivery_timeout,
        )?),
        Destination::Sms(config) => Arc::new(sms::SmsSink::new(
            name(),
            config,
            database,
            delivery_timeout,
        )?),
    })
}

/// Whether `host` (a name or an IP address, IPv6 possibly in brackets) is
/// this machine's loopback, where an unencrypted hop is acceptable.
pub(crate) fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
