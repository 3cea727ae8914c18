//! The notifications component: messages to users over the log, a
//! webhook, email and SMS, and the emails of an account's life
//! (verification, password reset, password changed).
//!
//! Spin routes `/notify` and `/notifications/...` here; this file maps
//! method and path to one handler module each. Notifications are sent on
//! request (`POST /notify`) or in reaction to events the bridge delivers
//! (`POST /notifications/events`, signed CloudEvents). Email and SMS leave
//! through the bridge's sinks ([`outbound`]), which report back.

mod account;
mod channel;
mod handlers;
mod notices;
mod outbound;
mod phone;
mod recipients;
mod reports;
mod store;
mod templates;

use kit::gate;
use kit::router::Route;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

/// The operations; one handler module each.
#[derive(Debug, Clone, Copy)]
enum Op {
    Notify,
    ListMine,
    Deliver,
    Health,
}

/// The routing table.
const ROUTES: &[Route<Op>] = &[
    Route::new("POST", "/notify", Op::Notify),
    Route::new("GET", "/notifications", Op::ListMine),
    Route::delivery("POST", "/notifications/events", Op::Deliver),
    Route::new("GET", "/notifications/health", Op::Health),
];

#[http_component]
async fn handle_notifications(req: Request) -> Response {
    let admitted = match gate::admit(&req, ROUTES) {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let result = match admitted.matched.handler {
        // Only `/notify` may call out over HTTP, hence the one `await`.
        Op::Notify => handlers::notify::handle(&req).await,
        Op::ListMine => handlers::list_mine::handle(&req),
        Op::Deliver => handlers::deliver::handle(&req),
        Op::Health => handlers::health::handle(&req),
    };
    gate::respond(&admitted.quotas, result)
}

#[cfg(test)]
mod tests {
    /// The routing table and `openapi.json` name the same operations.
    #[test]
    fn openapi_fragment_describes_exactly_the_routes() {
        kit::openapi::assert_fragment_matches(include_str!("../openapi.json"), super::ROUTES);
    }
}
