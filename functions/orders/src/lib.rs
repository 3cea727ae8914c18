//! The orders component: placing orders, their history, cancelling, and
//! the order side of the payment saga.
//!
//! Spin routes `/orders` and `/orders/...` here; this file maps method and
//! path to one handler module each. An order is placed with its stock
//! reserved and its `order.created` event in one statement ([`store`]);
//! the payments function answers with `payment.*` events, delivered to
//! `POST /orders/events`, which also receives the bridge's clock ticks
//! that cancel orders left unpaid too long.

mod handlers;
mod idempotency_keys;
mod input;
mod store;

use kit::gate;
use kit::router::Route;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

/// The operations; one handler module each.
#[derive(Debug, Clone, Copy)]
enum Op {
    Place,
    ListMine,
    Get,
    Cancel,
    Deliver,
    Health,
}

/// The routing table; literal routes before `{id}`.
const ROUTES: &[Route<Op>] = &[
    Route::new("GET", "/orders/health", Op::Health),
    Route::delivery("POST", "/orders/events", Op::Deliver),
    Route::new("POST", "/orders", Op::Place),
    Route::new("GET", "/orders", Op::ListMine),
    Route::new("GET", "/orders/{id}", Op::Get),
    Route::new("POST", "/orders/{id}/cancel", Op::Cancel),
];

#[http_component]
fn handle_orders(req: Request) -> Response {
    gate::serve(&req, ROUTES, |matched| {
        let id = matched.param("id").unwrap_or_default();
        match matched.handler {
            Op::Place => handlers::place::handle(&req),
            Op::ListMine => handlers::list_mine::handle(&req),
            Op::Get => handlers::get::handle(&req, id),
            Op::Cancel => handlers::cancel::handle(&req, id),
            Op::Deliver => handlers::deliver::handle(&req),
            Op::Health => handlers::health::handle(&req),
        }
    })
}

#[cfg(test)]
mod tests {
    /// The routing table and `openapi.json` name the same operations.
    #[test]
    fn openapi_fragment_describes_exactly_the_routes() {
        kit::openapi::assert_fragment_matches(include_str!("../openapi.json"), super::ROUTES);
    }
}
