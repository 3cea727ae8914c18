//! The posts component: posts, and the author profiles it keeps from the
//! auth function's user events.
//!
//! Spin routes `/posts` and `/posts/...` here; this file maps method and
//! path to one handler module each. Anyone may read; a signed-in user
//! writes posts, and only their author or an admin changes or deletes one.
//! Authors' names never come from calling auth: `user.registered` and
//! `user.updated` events keep a projection ([`authors`]) that the bridge
//! can rebuild from the outbox (`bridge replay --subscription posts`).

mod authors;
mod handlers;
mod input;
mod store;

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
    Route::new("GET", "/posts/health", Op::Health),
    Route::delivery("POST", "/posts/events", Op::Deliver),
    Route::new("GET", "/posts", Op::List),
    Route::new("POST", "/posts", Op::Create),
    Route::new("GET", "/posts/{id}", Op::Get),
    Route::new("PATCH", "/posts/{id}", Op::Update),
    Route::new("DELETE", "/posts/{id}", Op::Delete),
];

#[http_component]
fn handle_posts(req: Request) -> Response {
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
