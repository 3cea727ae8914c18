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

/// The routing table.
const ROUTES: &[Route<Handler>] = &[
    Route::new("POST", "/auth/register", handlers::register::handle),
    Route::new("POST", "/auth/login", handlers::login::handle),
    Route::new("POST", "/auth/refresh", handlers::refresh::handle),
    Route::new("POST", "/auth/logout", handlers::logout::handle),
    Route::new("GET", "/auth/me", handlers::me::handle),
    Route::new("PATCH", "/auth/me", handlers::update_me::handle),
    Route::new("GET", "/auth/health", handlers::health::handle),
    Route::new("POST", "/register", handlers::legacy_register::handle),
    Route::new("POST", "/login", handlers::legacy_login::handle),
    Route::new("POST", "/users", handlers::legacy_users::handle),
];

#[http_component]
fn handle_auth(req: Request) -> Response {
    let method = req.method().to_string();
    let result = router::resolve(ROUTES, &method, router::request_path(&req))
        .and_then(|matched| (matched.handler)(&req));
    result.unwrap_or_else(IntoResponse::into_response)
}
