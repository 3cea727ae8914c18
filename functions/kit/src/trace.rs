//! This invocation's W3C trace context, so the events a request causes
//! carry its trace (the CloudEvents distributed-tracing extension) and the
//! invocations those events trigger continue it: one purchase's
//! `POST /orders`, `order.created`, the payment and the order marked paid
//! share one trace id in the outbox and in every log line.
//!
//! [`begin`] (called by [`crate::gate`] for every request) notes the
//! request's `traceparent` header; the invocation's own span continues it,
//! or starts a new trace when there is none (under `spin up`, a client
//! that sends none; the bridge's host always sets one). [`crate::outbox`]
//! writes [`traceparent`] into every event row, as a parameter of the
//! statement (see [`crate::db::Statement::traced`]).

use std::cell::Cell;

use spin_sdk::http::Request;
use spinmesh_delivery::trace::{TRACEPARENT, Traceparent};

thread_local! {
    /// A component instance serves one request on one thread: the
    /// request's parent context, as [`begin`] found it.
    static PARENT: Cell<Option<Traceparent>> = const { Cell::new(None) };
    /// This invocation's span, made on first use (most requests write no
    /// event and never pay for one).
    static CURRENT: Cell<Option<Traceparent>> = const { Cell::new(None) };
}

/// Notes the request's `traceparent` (when valid) as the parent of this
/// invocation's span.
pub fn begin(req: &Request) {
    let parent = req
        .header(TRACEPARENT)
        .and_then(|v| v.as_str())
        .and_then(Traceparent::parse);
    PARENT.with(|p| p.set(parent));
    CURRENT.with(|c| c.set(None));
}

/// This invocation's trace context: a span of its own, the child of the
/// request's `traceparent`, or of a new trace when it had none (or
/// [`begin`] was not called).
pub fn current() -> Traceparent {
    CURRENT.with(|c| match c.get() {
        Some(current) => current,
        None => {
            let span = span_id();
            let current = match PARENT.with(Cell::get) {
                Some(parent) => parent.child(span),
                None => Traceparent::start(uuid::Uuid::new_v4().into_bytes(), span),
            };
            c.set(Some(current));
            current
        }
    })
}

/// What this invocation passes on: the `traceparent` of its events.
pub fn traceparent() -> String {
    current().to_string()
}

fn span_id() -> [u8; 8] {
    let random = uuid::Uuid::new_v4().into_bytes();
    let mut span = [0; 8];
    span.copy_from_slice(&random[8..]);
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(traceparent: Option<&str>) -> Request {
        let mut builder = Request::builder();
        builder.method(spin_sdk::http::Method::Post).uri("/orders");
        if let Some(value) = traceparent {
            builder.header(TRACEPARENT, value);
        }
        builder.build()
    }

    #[test]
    fn a_request_s_trace_is_continued_by_a_span_of_this_invocation() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        begin(&request(Some(parent)));
        let current = current();
        assert_eq!(current.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(current.to_string(), parent, "a span of its own");
        assert_eq!(
            traceparent(),
            current.to_string(),
            "stable within the invocation"
        );
    }

    #[test]
    fn without_a_valid_one_a_new_trace_starts() {
        begin(&request(Some("00-not-a-trace")));
        let first = current();
        begin(&request(None));
        let second = current();
        assert_ne!(first.trace_id, second.trace_id);
        assert!(Traceparent::parse(&second.to_string()).is_some());
    }
}
