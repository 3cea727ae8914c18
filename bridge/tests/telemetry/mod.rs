//! What an operator watches: Prometheus metrics on the admin listener, and
//! request ids and trace context that follow a request into the events it
//! causes and the invocations those trigger.

mod prometheus;
mod trace_context;
