//! The gateway component: what belongs to the application rather than to
//! one service.
//!
//! Spin routes `/health` here, and every path no other component claims
//! (`/...`, the least specific route): those get the same rate limit and
//! the same 404 problem as unknown paths under a service's routes, instead
//! of the host's bare 404.

mod handlers;
mod system;

use kit::gate;
use kit::router::Route;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

/// The operations; one handler module each.
#[derive(Debug, Clone, Copy)]
enum Op {
    Health,
}

/// The routing table; anything else is a 404 (or 405) from the router.
const ROUTES: &[Route<Op>] = &[Route::new("GET", "/health", Op::Health)];

#[http_component]
fn handle_gateway(req: Request) -> Response {
    gate::serve(&req, ROUTES, |matched| match matched.handler {
        Op::Health => handlers::health::handle(&req),
    })
}
