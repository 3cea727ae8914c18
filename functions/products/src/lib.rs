//! The products component: the catalog and its stock.
//!
//! Spin routes `/products` and `/products/...` here; this file maps method
//! and path to one handler module each. Anyone may read the catalog
//! (cache-aside in Redis, see [`cached`]); only admins change it. Stock
//! changes only through the SQL functions `reserve_stock` (called by the
//! orders function when an order is placed) and `release_stock` (called
//! here when an order is cancelled or its payment fails).

mod cached;
mod catalog;
mod handlers;
mod input;

use kit::gate;
use kit::router::Route;
use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

/// The operations; one handler module each.
#[derive(Debug, Clone, Copy)]
enum Op {
    List,
    Get,
    Create,
    Update,
    Delete,
    Deliver,
    Health,
}

/// The routing table. The literal routes come before `{id}`, which would
/// otherwise match them.
const ROUTES: &[Route<Op>] = &[
    Route::new("GET", "/products/health", Op::Health),
    Route::delivery("POST", "/products/events", Op::Deliver),
    Route::new("GET", "/products", Op::List),
    Route::new("POST", "/products", Op::Create),
    Route::new("GET", "/products/{id}", Op::Get),
    Route::new("PATCH", "/products/{id}", Op::Update),
    Route::new("DELETE", "/products/{id}", Op::Delete),
];

#[http_component]
fn handle_products(req: Request) -> Response {
    gate::serve(&req, ROUTES, |matched| {
        let id = matched.param("id").unwrap_or_default();
        match matched.handler {
            Op::List => handlers::list::handle(&req),
            Op::Get => handlers::get::handle(&req, id),
            Op::Create => handlers::create::handle(&req),
            Op::Update => handlers::update::handle(&req, id),
            Op::Delete => handlers::delete::handle(&req, id),
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
