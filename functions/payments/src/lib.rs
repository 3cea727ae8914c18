//! The payments component: charges each order once, through a simulated
//! card processor ([`processor`]), and announces the result.
//!
//! Spin routes `/payments/...` here. `order.created`, delivered to
//! `POST /payments/events`, leads to one payment row and one
//! `payment.succeeded` / `payment.failed` event, written in one statement
//! with the claim on the event ([`ledger`]); `GET /payments/{order_id}`
//! shows it to the buyer or an admin.

mod handlers;
mod ledger;
mod processor;

use kit::gate;
use kit::router::Route;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

/// The operations; one handler module each.
#[derive(Debug, Clone, Copy)]
enum Op {
    Get,
    Deliver,
    Health,
}

/// The routing table; literal routes before `{order_id}`.
const ROUTES: &[Route<Op>] = &[
    Route::new("GET", "/payments/health", Op::Health),
    Route::delivery("POST", "/payments/events", Op::Deliver),
    Route::new("GET", "/payments/{order_id}", Op::Get),
];

#[http_component]
fn handle_payments(req: Request) -> Response {
    gate::serve(&req, ROUTES, |matched| match matched.handler {
        Op::Get => handlers::get::handle(&req, matched.param("order_id").unwrap_or_default()),
        Op::Deliver => handlers::deliver::handle(&req),
        Op::Health => handlers::health::handle(&req),
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
