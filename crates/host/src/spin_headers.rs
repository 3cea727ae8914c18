//! The request as a Spin guest sees it: the `spin-*` headers Spin's HTTP
//! trigger adds, and the absolute URI wasi-http wants. Pure functions, so
//! the rules are tested without a server.

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::router::RouteMatch;

/// Where a request came from and was addressed to.
#[derive(Debug, Clone, Copy)]
pub struct Addressing<'a> {
    /// The `Host` header, when the client sent a readable one.
    pub host_header: Option<&'a str>,
    /// The listening address (stands in for a missing `Host`).
    pub listen: SocketAddr,
    /// The client's address (`spin-client-addr`).
    pub client: SocketAddr,
}

impl<'a> Addressing<'a> {
    /// The authority the request was addressed to: borrowed from the
    /// `Host` header (the usual case, no allocation), or the listening
    /// address written out.
    pub fn authority(&self) -> Cow<'a, str> {
        self.host_header
            .map_or_else(|| Cow::Owned(self.listen.to_string()), Cow::Borrowed)
    }
}

/// The headers Spin adds for a request to `path_and_query` that matched
/// `route`, in the order Spin documents them.
pub fn spin_headers(
    route: &RouteMatch<'_>,
    path_and_query: &str,
    at: &Addressing<'_>,
) -> Vec<(String, String)> {
    let mut headers = vec![
        (
            "spin-full-url".to_owned(),
            format!("http://{}{path_and_query}", at.authority()),
        ),
        ("spin-path-info".to_owned(), route.path_info.clone()),
        ("spin-matched-route".to_owned(), route.pattern.to_string()),
        (
            "spin-raw-component-route".to_owned(),
            route.pattern.to_string(),
        ),
        (
            "spin-component-route".to_owned(),
            route.component_route.clone(),
        ),
        ("spin-base-path".to_owned(), "/".to_owned()),
        ("spin-client-addr".to_owned(), at.client.to_string()),
    ];
    headers.extend(
        route
            .params
            .iter()
            .map(|(name, value)| (format!("spin-path-match-{name}"), value.clone())),
    );
    headers
}

/// `uri` made absolute (scheme and authority), as wasi-http requires; the
/// listening address when the `Host` header is not a valid authority.
pub fn absolute_uri(uri: &http::Uri, at: &Addressing<'_>) -> Option<http::Uri> {
    let mut parts = uri.clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = at
        .authority()
        .parse()
        .ok()
        .or_else(|| at.listen.to_string().parse().ok());
    http::Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Router;

    fn addressing(host_header: Option<&str>) -> Addressing<'_> {
        Addressing {
            host_header,
            listen: "127.0.0.1:3000".parse().unwrap(),
            client: "10.0.0.7:51000".parse().unwrap(),
        }
    }

    fn headers_for(route: &str, path: &str, query: &str) -> Vec<(String, String)> {
        let router = Router::new([(route.to_owned(), 0)]).unwrap();
        let matched = router.find(path).unwrap();
        spin_headers(
            &matched,
            &format!("{path}{query}"),
            &addressing(Some("shop.example:8080")),
        )
    }

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_wildcard_route_gives_path_info_and_the_full_url() {
        let h = headers_for("/auth/...", "/auth/login", "?next=/me");
        assert_eq!(
            get(&h, "spin-full-url"),
            Some("http://shop.example:8080/auth/login?next=/me")
        );
        assert_eq!(get(&h, "spin-path-info"), Some("/login"));
        assert_eq!(get(&h, "spin-matched-route"), Some("/auth/..."));
        assert_eq!(get(&h, "spin-raw-component-route"), Some("/auth/..."));
        assert_eq!(get(&h, "spin-component-route"), Some("/auth"));
        assert_eq!(get(&h, "spin-base-path"), Some("/"));
        assert_eq!(get(&h, "spin-client-addr"), Some("10.0.0.7:51000"));
    }

    #[test]
    fn named_segments_become_path_match_headers() {
        let h = headers_for(
            "/products/:id/reviews/:review",
            "/products/p1/reviews/r9",
            "",
        );
        assert_eq!(get(&h, "spin-path-match-id"), Some("p1"));
        assert_eq!(get(&h, "spin-path-match-review"), Some("r9"));
        assert_eq!(get(&h, "spin-path-info"), Some(""));
    }

    #[test]
    fn a_missing_host_header_falls_back_to_the_listening_address() {
        let at = addressing(None);
        let router = Router::new([("/health".to_owned(), 0)]).unwrap();
        let h = spin_headers(&router.find("/health").unwrap(), "/health", &at);
        assert_eq!(
            get(&h, "spin-full-url"),
            Some("http://127.0.0.1:3000/health")
        );
        let uri = absolute_uri(&"/health?x=1".parse().unwrap(), &at).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:3000/health?x=1");
    }

    #[test]
    fn an_invalid_host_header_still_gives_an_absolute_uri() {
        let uri = absolute_uri(&"/a".parse().unwrap(), &addressing(Some("bad host"))).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:3000/a");
        let uri = absolute_uri(&"/a".parse().unwrap(), &addressing(Some("h.example"))).unwrap();
        assert_eq!(uri.to_string(), "http://h.example/a");
    }
}
