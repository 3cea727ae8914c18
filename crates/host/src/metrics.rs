//! What the host counts, through the `metrics` facade: requests by route,
//! method and status with their latency, and per component the instances
//! started, the guests that trapped and those stopped at their deadline.
//!
//! Recording goes to whatever recorder the process installed (`bridge up`
//! installs a Prometheus one when its admin listener is on); with none, a
//! record is a no-op. Labels are shared strings built once (the route and
//! component names are `Arc<str>`), so a request pays for a registry
//! lookup, not for allocations.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

/// Requests answered, by `route` (the manifest's pattern, e.g.
/// `/products/...`), `method` and `status`.
pub const HTTP_REQUESTS: &str = "spinmesh_http_requests_total";
/// Time from a request's arrival to its answer's head, by `route` and
/// `method`.
pub const HTTP_DURATION: &str = "spinmesh_http_request_duration_seconds";
/// Instances started, by `component`.
pub const INSTANTIATIONS: &str = "spinmesh_component_instantiations_total";
/// Guests that trapped (a panic, an out-of-bounds access, a limit), by
/// `component`; timeouts are counted apart.
pub const TRAPS: &str = "spinmesh_component_traps_total";
/// Guests stopped at the request deadline, by `component`.
pub const TIMEOUTS: &str = "spinmesh_component_timeouts_total";

/// Every metric above.
pub const NAMES: &[&str] = &[
    HTTP_REQUESTS,
    HTTP_DURATION,
    INSTANTIATIONS,
    TRAPS,
    TIMEOUTS,
];

/// The `route` label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Registers the help text of the host's metrics.
pub fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests answered, by manifest route, method and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its answer, by manifest route and method"
    );
    describe_counter!(INSTANTIATIONS, Unit::Count, "Component instances started");
    describe_counter!(
        TRAPS,
        Unit::Count,
        "Guests that trapped (timeouts not included)"
    );
    describe_counter!(
        TIMEOUTS,
        Unit::Count,
        "Guests stopped at the request deadline"
    );
}

/// One answered request.
pub fn request(route: &Arc<str>, method: &http::Method, status: u16, took: Duration) {
    let method = method_label(method);
    counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status_label(status))
        .increment(1);
    histogram!(HTTP_DURATION, "route" => route.clone(), "method" => method)
        .record(took.as_secs_f64());
}

/// One answered request that matched no route.
pub fn unmatched(method: &http::Method, status: u16, took: Duration) {
    static ROUTE: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| UNMATCHED.into());
    request(&ROUTE, method, status, took);
}

/// An instance of `component` started.
pub fn instantiated(component: &Arc<str>) {
    counter!(INSTANTIATIONS, "component" => component.clone()).increment(1);
}

/// A guest of `component` ended with `error`: a timeout when the epoch
/// deadline interrupted it, a trap otherwise.
pub fn failed(component: &Arc<str>, error: &wasmtime::Error) {
    let timed_out = error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt);
    let name = if timed_out { TIMEOUTS } else { TRAPS };
    counter!(name, "component" => component.clone()).increment(1);
}

/// Methods as static labels; anything unusual is `other` (a client must
/// not be able to mint label values).
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Status codes as static labels, without formatting per request.
fn status_label(status: u16) -> &'static str {
    const KNOWN: &[(u16, &str)] = &[
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (301, "301"),
        (302, "302"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (409, "409"),
        (410, "410"),
        (412, "412"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (428, "428"),
        (429, "429"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    match KNOWN.binary_search_by_key(&status, |(code, _)| *code) {
        Ok(i) => KNOWN[i].1,
        Err(_) => match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_labelled_by_code_or_class() {
        assert_eq!(status_label(201), "201");
        assert_eq!(status_label(429), "429");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(599), "5xx");
        assert_eq!(status_label(103), "1xx");
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
        let odd = http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
    }
}
