//! The function sink: each attempt is one signed request to the
//! subscribing function's route. One event goes in CloudEvents binary mode;
//! several go as one `application/cloudevents-batch+json` request (see the
//! delivery contract in `spinmesh-delivery`).

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::Sink;
use crate::event::{OutboxEvent, Signer};
use crate::invoke::Invoker;
use crate::outcome::Attempt;

/// Delivers to one route of the functions behind `invoker`.
#[derive(Clone)]
pub struct FunctionSink {
    /// In-process host or remote Spin host.
    pub invoker: Invoker,
    /// The subscription's route, e.g. `/analytics/events`.
    pub route: String,
    /// Signs each request.
    pub signer: Signer,
    /// Time limit for one request.
    pub timeout: Duration,
}

impl Sink for FunctionSink {
    fn deliver<'a>(&'a self, events: &'a [OutboxEvent]) -> BoxFuture<'a, Attempt> {
        match events {
            [event] => self
                .invoker
                .deliver(&self.route, event, &self.signer, self.timeout)
                .boxed(),
            _ => self
                .invoker
                .deliver_batch(&self.route, events, &self.signer, self.timeout)
                .boxed(),
        }
    }
}
