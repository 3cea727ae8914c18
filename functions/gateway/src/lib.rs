//! The gateway component: what belongs to the application rather than to
//! one service.
//!
//! Spin routes `/health` here, and every path no other component claims
//! (`/...`, the least specific route): the system's health, the OpenAPI
//! document of every route (`/openapi.json`, merged from the functions'
//! fragments when this component is built) and its interactive docs page
//! (`/docs`). Unknown paths get the same rate limit and the same 404
//! problem as unknown paths under a service's routes, instead of the
//! host's bare 404.

mod files;
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
    OpenApi,
    Docs,
    DocsAsset,
}

/// The routing table; anything else is a 404 (or 405) from the router.
const ROUTES: &[Route<Op>] = &[
    Route::new("GET", "/health", Op::Health),
    Route::new("GET", "/openapi.json", Op::OpenApi),
    Route::new("GET", "/docs", Op::Docs),
    Route::new("GET", "/docs/{asset}", Op::DocsAsset),
];

#[http_component]
fn handle_gateway(req: Request) -> Response {
    gate::serve(&req, ROUTES, |matched| match matched.handler {
        Op::Health => handlers::health::handle(&req),
        Op::OpenApi => handlers::openapi::handle(&req),
        Op::Docs => handlers::docs::page(&req),
        Op::DocsAsset => handlers::docs::asset(&req, matched.param("asset").unwrap_or_default()),
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
