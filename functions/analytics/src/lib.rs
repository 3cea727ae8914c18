//! The analytics component: tracked events and per-action counters.
//!
//! Spin routes `/events`, `/metrics/...` and `/analytics/...` here; this
//! file maps method and path to one handler module each. Events arrive
//! either posted by clients (`POST /events`) or delivered by the bridge for
//! every event type (`POST /analytics/events`, signed CloudEvents).

mod counters;
mod handlers;
mod tracked;

use kit::ApiError;
use kit::gate;
use kit::router::Route;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

/// Every handler has this shape; the router renders its error.
type Handler = fn(&Request, &Params) -> Result<Response, ApiError>;

/// The values of the matched route's `{name}` captures.
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    /// The value captured for `{name}`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The routing table.
const ROUTES: &[Route<Handler>] = &[
    Route::new("POST", "/events", handlers::track::handle),
    Route::new("GET", "/metrics/actions", handlers::actions::handle),
    Route::new(
        "GET",
        "/metrics/user/{user_id}/actions",
        handlers::user_actions::handle,
    ),
    Route::delivery("POST", "/analytics/events", handlers::deliver::handle),
    Route::new("GET", "/analytics/health", handlers::health::handle),
];

#[http_component]
fn handle_analytics(req: Request) -> Response {
    gate::serve(&req, ROUTES, |matched| {
        (matched.handler)(&req, &Params(matched.params))
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
