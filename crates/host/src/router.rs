//! HTTP route matching with Spin's rules.
//!
//! A route is exact (`/health`), a wildcard (`/auth/...`, matching `/auth`
//! and everything below it) or has named segments (`/users/:id`). When
//! several match, the most specific wins: an exact route over one with
//! parameters over a wildcard, and among wildcards the longest prefix.

use std::sync::Arc;

use anyhow::bail;

/// One route in the table.
#[derive(Debug, Clone)]
pub struct Route {
    /// The pattern as written in `spin.toml` (shared: it labels every
    /// request's metrics).
    pub pattern: Arc<str>,
    /// Index of the component that serves it.
    pub component: usize,
    segments: Vec<Segment>,
    wildcard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// The outcome of matching a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The route's pattern (`spin-matched-route`).
    pub pattern: &'a Arc<str>,
    /// The component index.
    pub component: usize,
    /// The route without its `/...` suffix (`spin-component-route`).
    pub component_route: String,
    /// What the wildcard matched, with a leading `/`, or empty (`spin-path-info`).
    pub path_info: String,
    /// Named segments (`spin-path-match-<name>`).
    pub params: Vec<(String, String)>,
}

/// All routes of an application.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds the table.
    ///
    /// # Errors
    /// When a pattern is malformed or declared twice.
    pub fn new(routes: impl IntoIterator<Item = (String, usize)>) -> anyhow::Result<Self> {
        let mut out: Vec<Route> = Vec::new();
        for (pattern, component) in routes {
            let route = parse(&pattern, component)?;
            if out
                .iter()
                .any(|r| r.segments == route.segments && r.wildcard == route.wildcard)
            {
                bail!("duplicate route {pattern:?}");
            }
            out.push(route);
        }
        Ok(Self { routes: out })
    }

    /// The routes in declaration order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the most specific route for `path` (no query string).
    pub fn find(&self, path: &str) -> Option<RouteMatch<'_>> {
        let parts: Vec<&str> = split(path).collect();
        self.routes
            .iter()
            .filter_map(|r| r.matches(&parts).map(|m| (r.rank(), m)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, m)| m)
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn parse(pattern: &str, component: usize) -> anyhow::Result<Route> {
    if !pattern.starts_with('/') {
        bail!("route {pattern:?} must start with '/'");
    }
    let (body, wildcard) = match pattern.strip_suffix("/...") {
        Some(b) => (b, true),
        None if pattern == "/..." => ("", true),
        None => (pattern, false),
    };
    let mut segments = Vec::new();
    for s in split(body) {
        if s == "..." {
            bail!("route {pattern:?}: '...' may only end a route");
        }
        segments.push(match s.strip_prefix(':') {
            Some("") => bail!("route {pattern:?}: empty parameter name"),
            Some(name) => Segment::Param(name.to_string()),
            None => Segment::Literal(s.to_string()),
        });
    }
    Ok(Route {
        pattern: pattern.into(),
        component,
        segments,
        wildcard,
    })
}

impl Route {
    /// Higher is more specific.
    fn rank(&self) -> (bool, usize, std::cmp::Reverse<usize>) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let params = self.segments.len() - literals;
        (!self.wildcard, literals, std::cmp::Reverse(params))
    }

    fn matches<'a>(&'a self, parts: &[&str]) -> Option<RouteMatch<'a>> {
        if parts.len() < self.segments.len()
            || (!self.wildcard && parts.len() != self.segments.len())
        {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), (*part).to_string())),
            }
        }
        let rest = &parts[self.segments.len()..];
        let path_info = if rest.is_empty() {
            String::new()
        } else {
            format!("/{}", rest.join("/"))
        };
        let component_route = self
            .pattern
            .strip_suffix("/...")
            .unwrap_or(&self.pattern)
            .to_string();
        Some(RouteMatch {
            pattern: &self.pattern,
            component: self.component,
            component_route,
            path_info,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(
            [
                ("/...", 0),
                ("/auth/...", 1),
                ("/auth/health", 2),
                ("/users/:id", 3),
                ("/users/me", 4),
                ("/auth/admin/...", 5),
            ]
            .map(|(p, c)| (p.to_string(), c)),
        )
        .unwrap()
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router();
        let cases = [
            ("/auth/health", 2, ""),
            ("/auth/me", 1, "/me"),
            ("/auth", 1, ""),
            ("/auth/admin/x/y", 5, "/x/y"),
            ("/users/me", 4, ""),
            ("/users/42", 3, ""),
            ("/nothing/here", 0, "/nothing/here"),
        ];
        for (path, component, info) in cases {
            let m = r.find(path).unwrap_or_else(|| panic!("{path} unmatched"));
            assert_eq!(m.component, component, "{path}");
            assert_eq!(m.path_info, info, "{path}");
        }
    }

    #[test]
    fn params_are_captured() {
        let r = router();
        let m = r.find("/users/42").unwrap();
        assert_eq!(m.params, vec![("id".to_string(), "42".to_string())]);
    }

    #[test]
    fn no_catch_all_means_no_match() {
        let r = Router::new([("/a".to_string(), 0)]).unwrap();
        assert!(r.find("/b").is_none());
        assert!(r.find("/a/b").is_none());
        assert_eq!(r.find("/a/").unwrap().component, 0);
    }

    #[test]
    fn duplicates_and_bad_patterns_are_rejected() {
        assert!(Router::new([("/a".into(), 0), ("/a".into(), 1)]).is_err());
        assert!(Router::new([("a".into(), 0)]).is_err());
        assert!(Router::new([("/a/.../b".into(), 0)]).is_err());
    }
}
