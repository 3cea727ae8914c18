//! The auth component: accounts, passwords and tokens.
//!
//! Spin routes `/auth/...`, `/register` and `/login` here; this file maps
//! method and path to one handler module each.

mod handlers;
mod passwords;
mod refresh_tokens;
mod session;
mod users;

use kit::ApiError;
use kit::router::{self, Route};
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

/// Every handler has this shape; the router renders its error.
type Handler = fn(&Request) -> Result<Response, ApiError>;

const fn route(method: &'static str, pattern: &'static str, handler: Handler) -> Route<Handler> {
    Route {
        method,
        pattern,
        handler,
    }
}

/// The routing table.
const ROUTES: &[Route<Handler>] = &[
    route("POST", "/auth/register", handlers::register::handle),
    route("POST", "/auth/login", handlers::login::handle),
    route("POST", "/auth/refresh", handlers::refresh::handle),
    route("POST", "/auth/logout", handlers::logout::handle),
    route("GET", "/auth/me", handlers::me::handle),
    route("PATCH", "/auth/me", handlers::update_me::handle),
    route("GET", "/auth/health", handlers::health::handle),
    route("POST", "/register", handlers::legacy_register::handle),
    route("POST", "/login", handlers::legacy_login::handle),
];

#[http_component]
fn handle_auth(req: Request) -> Response {
    let method = req.method().to_string();
    let result = router::resolve(ROUTES, &method, router::request_path(&req))
        .and_then(|matched| (matched.handler)(&req));
    result.unwrap_or_else(IntoResponse::into_response)
}
