//! `allowed_outbound_hosts`: which addresses a component may connect to.
//!
//! Entries are `scheme://host[:port]`, as in Spin: `*` may stand for the
//! scheme, the host or the port, a host may start with `*.` to allow its
//! subdomains, and a port may be a range `a..b` (end exclusive). An omitted
//! port means the scheme's well-known port. A denied connection fails before
//! any socket is opened, exactly as it does under `spin up`.

use anyhow::{Context, bail};
use spinmesh_config::redact::redact;

/// One parsed allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    scheme: Pattern,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    SubdomainsOf(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

/// A component's compiled allowlist.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Vec<AllowedHost>,
}

/// The scheme, host and port an outbound connection targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Lower-case scheme, e.g. `postgres`.
    pub scheme: String,
    /// Lower-case host name or IP literal (without brackets).
    pub host: String,
    /// Port, defaulted from the scheme.
    pub port: u16,
}

fn default_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "postgres" | "postgresql" => 5432,
        "redis" | "rediss" => 6379,
        "mysql" => 3306,
        "mqtt" => 1883,
        _ => return None,
    })
}

impl OutboundPolicy {
    /// Parses a component's `allowed_outbound_hosts`.
    ///
    /// # Errors
    /// When an entry is not of the form `scheme://host[:port]`.
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        let allowed = entries
            .iter()
            .map(|e| parse_entry(e).with_context(|| format!("allowed_outbound_hosts entry {e:?}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { allowed })
    }

    /// Whether a connection to `target` is allowed.
    pub fn allows(&self, target: &Target) -> bool {
        self.allowed.iter().any(|a| {
            let scheme_ok = match &a.scheme {
                Pattern::Any => true,
                Pattern::Exact(s) => {
                    s == &target.scheme
                        || (s == "postgres" && target.scheme == "postgresql")
                        || (s == "postgresql" && target.scheme == "postgres")
                }
            };
            let host_ok = match &a.host {
                HostPattern::Any => true,
                HostPattern::Exact(h) => h == &target.host,
                HostPattern::SubdomainsOf(d) => target
                    .host
                    .strip_suffix(d.as_str())
                    .is_some_and(|rest| rest.ends_with('.')),
            };
            let port_ok = match a.port {
                PortPattern::Any => true,
                PortPattern::Range(lo, hi) => (lo..hi).contains(&target.port),
            };
            scheme_ok && host_ok && port_ok
        })
    }

    /// Checks a URL (`postgres://user@host:port/db`, `http://host/path`).
    ///
    /// # Errors
    /// When the URL cannot be parsed or its target is not allowed; the message
    /// names the entry to add, as Spin's does.
    pub fn check_url(&self, url: &str) -> anyhow::Result<Target> {
        let target = parse_target(url)?;
        if self.allows(&target) {
            Ok(target)
        } else {
            bail!(
                "destination not allowed: {}://{}:{} is not in the component's allowed_outbound_hosts",
                target.scheme,
                target.host,
                target.port
            )
        }
    }
}

fn parse_entry(entry: &str) -> anyhow::Result<AllowedHost> {
    let (scheme, rest) = entry
        .split_once("://")
        .context("expected scheme://host[:port]")?;
    let scheme = match scheme {
        "*" => Pattern::Any,
        s if !s.is_empty() => Pattern::Exact(s.to_ascii_lowercase()),
        _ => bail!("empty scheme"),
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        bail!("paths are not allowed in an outbound host");
    }
    let (host, port) = split_host_port(rest);
    let host = match host {
        "*" => HostPattern::Any,
        "" => bail!("empty host"),
        h => match h.strip_prefix("*.") {
            Some(domain) => HostPattern::SubdomainsOf(domain.to_ascii_lowercase()),
            None => HostPattern::Exact(h.to_ascii_lowercase()),
        },
    };
    let port = match port {
        Some("*") => PortPattern::Any,
        Some(p) => match p.split_once("..") {
            Some((lo, hi)) => PortPattern::Range(lo.parse()?, hi.parse()?),
            None => {
                let n: u16 = p.parse().context("bad port")?;
                PortPattern::Range(n, n.saturating_add(1))
            }
        },
        None => match &scheme {
            Pattern::Exact(s) => {
                let n = default_port(s)
                    .with_context(|| format!("scheme {s} has no default port: give one"))?;
                PortPattern::Range(n, n + 1)
            }
            Pattern::Any => bail!("a wildcard scheme needs an explicit port"),
        },
    };
    Ok(AllowedHost { scheme, host, port })
}

/// Splits `host:port`, `[v6]:port`, `host`.
fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((h, tail)) = rest.split_once(']')
    {
        return (h, tail.strip_prefix(':'));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    }
}

/// Extracts scheme, host and port from a connection URL.
///
/// # Errors
/// When there is no scheme or host.
pub fn parse_target(url: &str) -> anyhow::Result<Target> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("not a URL: {}", redact(url)))?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = split_host_port(host_port);
    if host.is_empty() {
        bail!("no host in {}", redact(url));
    }
    let port = match port {
        Some(p) => p.parse().context("bad port")?,
        None => {
            default_port(&scheme).with_context(|| format!("no port and no default for {scheme}"))?
        }
    };
    Ok(Target {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn exact_host_with_default_port() {
        let p = policy(&["postgres://127.0.0.1"]);
        assert!(p.check_url("postgres://u:pw@127.0.0.1/db").is_ok());
        assert!(p.check_url("postgres://127.0.0.1:5433/db").is_err());
        assert!(p.check_url("postgres://127.0.0.2/db").is_err());
        assert!(p.check_url("redis://127.0.0.1").is_err());
    }

    #[test]
    fn wildcards_and_ranges() {
        let p = policy(&[
            "http://*.example.com:*",
            "https://api.test:8000..8002",
            "*://10.0.0.1:99",
        ]);
        assert!(p.check_url("http://a.example.com:1234/x").is_ok());
        assert!(p.check_url("http://example.com/x").is_err());
        assert!(p.check_url("https://api.test:8001").is_ok());
        assert!(p.check_url("https://api.test:8002").is_err());
        assert!(p.check_url("mqtt://10.0.0.1:99").is_ok());
    }

    #[test]
    fn empty_policy_denies_everything() {
        assert!(policy(&[]).check_url("http://127.0.0.1/").is_err());
    }

    #[test]
    fn bad_entries_are_rejected() {
        for bad in ["127.0.0.1", "http://", "http://h/path", "foo://h", "*://h"] {
            assert!(OutboundPolicy::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
