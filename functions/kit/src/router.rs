//! A tiny method + path router.
//!
//! A component lists its routes as a table; [`resolve`] finds the handler or
//! says why not: 404 when no pattern matches the path, 405 (with the methods
//! that would have worked) when one matches but not for this method. A
//! `GET` route answers `HEAD` as well.
//! Patterns are literal segments plus `{name}` captures. Each route also
//! says how the edge guards it ([`Guard`]; see [`crate::gate`]).

use spin_sdk::http::Request;

use crate::problem::ApiError;

/// Which rate limits a route is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// A public route: the per-address limit; served without it when Redis
    /// is down.
    Public,
    /// Login and password routes: the per-address limit and the stricter
    /// login limit; refused (503) when Redis is down, so guessing cannot
    /// go on unmetered.
    Credentials,
    /// The bridge's signed event deliveries: never limited (the signature
    /// is checked by the handler, and a limit would only make the bridge
    /// retry).
    Delivery,
}

/// One row of a routing table.
#[derive(Debug, Clone, Copy)]
pub struct Route<H> {
    /// Upper-case method (`"GET"`).
    pub method: &'static str,
    /// Path pattern, e.g. `/auth/me` or `/products/{id}`.
    pub pattern: &'static str,
    /// What handles it.
    pub handler: H,
    /// How the edge guards it.
    pub guard: Guard,
}

impl<H> Route<H> {
    /// A public route; `const` so tables can be `const` arrays.
    pub const fn new(method: &'static str, pattern: &'static str, handler: H) -> Self {
        Self {
            method,
            pattern,
            handler,
            guard: Guard::Public,
        }
    }

    /// A login or password route ([`Guard::Credentials`]).
    pub const fn credentials(method: &'static str, pattern: &'static str, handler: H) -> Self {
        Self {
            method,
            pattern,
            handler,
            guard: Guard::Credentials,
        }
    }

    /// A bridge delivery route ([`Guard::Delivery`]).
    pub const fn delivery(method: &'static str, pattern: &'static str, handler: H) -> Self {
        Self {
            method,
            pattern,
            handler,
            guard: Guard::Delivery,
        }
    }
}

/// A route that matched, with the values of its `{name}` captures.
#[derive(Debug)]
pub struct Matched<'r, H> {
    /// The matched route's handler.
    pub handler: &'r H,
    /// The matched route's guard.
    pub guard: Guard,
    /// `(name, value)` for each capture, in pattern order.
    pub params: Vec<(&'static str, String)>,
}

impl<H> Matched<'_, H> {
    /// The value captured for `{name}`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The request's path, without query and without a trailing slash.
///
/// Spin passes the full path in the request URI (`spin-path-info` holds only
/// the part after a wildcard route's prefix), so routing on the URI path
/// works for exact and wildcard routes alike.
pub fn request_path(req: &Request) -> &str {
    normalize(req.path())
}

fn normalize(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    }
}

/// Finds the route for `method` and `path`.
///
/// # Errors
///
/// 404 when no pattern matches `path`; 405 with an `Allow` list when some
/// do, but not for `method`.
pub fn resolve<'r, H>(
    routes: &'r [Route<H>],
    method: &str,
    path: &str,
) -> Result<Matched<'r, H>, ApiError> {
    let path = normalize(path);
    let mut allow = Vec::new();
    for route in routes {
        let Some(params) = match_pattern(route.pattern, path) else {
            continue;
        };
        if serves(route.method, method) {
            return Ok(Matched {
                handler: &route.handler,
                guard: route.guard,
                params,
            });
        }
        for served in [route.method]
            .into_iter()
            .chain((route.method == "GET").then_some("HEAD"))
        {
            if !allow.contains(&served) {
                allow.push(served);
            }
        }
    }
    if allow.is_empty() {
        Err(ApiError::NotFound(format!("no route for {path}")))
    } else {
        Err(ApiError::MethodNotAllowed { allow })
    }
}

/// Whether a route listed for `listed` serves a request's `method`. A
/// `GET` route serves `HEAD` too (RFC 9110 §9.3.2: the same answer without
/// its body, which the host leaves out), so `curl -I` and uptime checks get
/// the route's status and headers rather than a 405.
fn serves(listed: &str, method: &str) -> bool {
    listed.eq_ignore_ascii_case(method) || (listed == "GET" && method.eq_ignore_ascii_case("HEAD"))
}

fn match_pattern(pattern: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    let mut params = Vec::new();
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(params),
            (Some(expected), Some(actual)) => {
                match expected.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) if !actual.is_empty() => params.push((name, actual.to_owned())),
                    Some(_) => return None,
                    None if expected == actual => {}
                    None => return None,
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &[Route<u8>] = &[
        Route::new("GET", "/auth/me", 1),
        Route::new("PATCH", "/auth/me", 2),
        Route::new("GET", "/products/{id}", 3),
        Route::delivery("POST", "/products/events", 4),
    ];

    #[test]
    fn exact_paths_resolve_by_method() {
        assert_eq!(*resolve(ROUTES, "GET", "/auth/me").unwrap().handler, 1);
        assert_eq!(*resolve(ROUTES, "PATCH", "/auth/me/").unwrap().handler, 2);
    }

    #[test]
    fn captures_are_returned() {
        let matched = resolve(ROUTES, "GET", "/products/42").unwrap();
        assert_eq!(matched.param("id"), Some("42"));
        assert!(resolve(ROUTES, "GET", "/products/").is_err());
        assert!(resolve(ROUTES, "GET", "/products/42/x").is_err());
    }

    #[test]
    fn the_match_carries_the_routes_guard() {
        let matched = resolve(ROUTES, "POST", "/products/events").unwrap();
        assert_eq!(matched.guard, Guard::Delivery);
        assert_eq!(
            resolve(ROUTES, "GET", "/auth/me").unwrap().guard,
            Guard::Public
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        assert_eq!(resolve(ROUTES, "GET", "/nope").unwrap_err().status(), 404);
        let err = resolve(ROUTES, "DELETE", "/auth/me").unwrap_err();
        assert_eq!(err.status(), 405);
        assert!(
            err.headers()
                .contains(&("allow".to_owned(), "GET, HEAD, PATCH".to_owned()))
        );
    }

    #[test]
    fn a_get_route_serves_head_too() {
        assert_eq!(*resolve(ROUTES, "HEAD", "/auth/me").unwrap().handler, 1);
        assert_eq!(
            resolve(ROUTES, "HEAD", "/products/42").unwrap().param("id"),
            Some("42")
        );
        let posts_only = [Route::new("POST", "/auth/login", 5)];
        let err = resolve(&posts_only, "HEAD", "/auth/login").unwrap_err();
        assert_eq!(err.status(), 405);
        assert!(
            err.headers()
                .contains(&("allow".to_owned(), "POST".to_owned()))
        );
    }

    #[test]
    fn the_root_path_is_not_empty() {
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize(""), "/");
    }
}
