//! The auth component: accounts, passwords and tokens.
//!
//! Spin routes `/auth/...`, `/register`, `/login` and `/users` here; this
//! file maps method and path to one handler module each.

mod account_tokens;
mod handlers;
mod password_changes;
mod passwords;
mod refresh_tokens;
mod session;
mod users;

use kit::ApiError;
use kit::gate;
use kit::router::Route;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

/// Every handler has this shape; the router renders its error.
type Handler = fn(&Request) -> Result<Response, ApiError>;

/// The routing table.
const ROUTES: &[Route<Handler>] = &[
    Route::new("POST", "/auth/register", handlers::register::handle),
    Route::credentials("POST", "/auth/login", handlers::login::handle),
    Route::new("POST", "/auth/refresh", handlers::refresh::handle),
    Route::new("POST", "/auth/logout", handlers::logout::handle),
    Route::new("GET", "/auth/me", handlers::me::handle),
    Route::new("PATCH", "/auth/me", handlers::update_me::handle),
    Route::new("GET", "/auth/health", handlers::health::handle),
    Route::new("POST", "/auth/verify-email", handlers::verify_email::handle),
    Route::new(
        "GET",
        "/auth/verify-email",
        handlers::verify_email_link::handle,
    ),
    Route::new(
        "POST",
        "/auth/verify-email/resend",
        handlers::resend_verification::handle,
    ),
    Route::credentials(
        "POST",
        "/auth/password-reset",
        handlers::password_reset::handle,
    ),
    Route::credentials(
        "POST",
        "/auth/password-reset/confirm",
        handlers::password_reset_confirm::handle,
    ),
    Route::credentials("POST", "/auth/password", handlers::change_password::handle),
    Route::new("POST", "/register", handlers::legacy_register::handle),
    Route::credentials("POST", "/login", handlers::legacy_login::handle),
    Route::new("POST", "/users", handlers::legacy_users::handle),
];

#[http_component]
fn handle_auth(req: Request) -> Response {
    gate::serve(&req, ROUTES, |matched| (matched.handler)(&req))
}

#[cfg(test)]
mod tests {
    /// The routing table and `openapi.json` name the same operations.
    #[test]
    fn openapi_fragment_describes_exactly_the_routes() {
        kit::openapi::assert_fragment_matches(include_str!("../openapi.json"), super::ROUTES);
    }
}
