//! The address a request came from, as the rate limiter keys it.
//!
//! The host names the peer in `spin-client-addr` (`ip:port`). Behind
//! reverse proxies the peer is the last proxy, so the operator says how many
//! proxies to trust (`rate_limit_trusted_proxies`, default 0): with `n`
//! trusted hops, the client is the `n`-th address from the right of
//! `X-Forwarded-For`. Entries further left were written by whoever sent the
//! request and prove nothing, so they are never used; only when the header
//! holds fewer entries than trusted hops does the leftmost one stand in.

use std::net::IpAddr;

/// The client address of a request: `trusted_hops` proxies in front of the
/// host, the peer the host saw, and the `X-Forwarded-For` values in order.
/// `None` when no address can be read (the caller picks a shared bucket).
pub fn resolve<'a>(
    trusted_hops: usize,
    peer: Option<&str>,
    forwarded_for: impl IntoIterator<Item = &'a str>,
) -> Option<IpAddr> {
    if trusted_hops == 0 {
        return peer.and_then(parse_peer);
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect();
    let index = hops.len().saturating_sub(trusted_hops);
    hops.get(index)
        .and_then(|entry| parse_peer(entry))
        .or_else(|| peer.and_then(parse_peer))
}

/// An address with or without a port: `1.2.3.4`, `1.2.3.4:80`, `::1`,
/// `[::1]:80`.
fn parse_peer(value: &str) -> Option<IpAddr> {
    let value = value.trim();
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    value.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let xff = ["6.6.6.6"];
        assert_eq!(resolve(0, Some("127.0.0.1:5000"), xff), ip("127.0.0.1"));
        assert_eq!(resolve(0, Some("[::1]:5000"), []), ip("::1"));
        assert_eq!(resolve(0, Some("10.0.0.1"), []), ip("10.0.0.1"));
        assert_eq!(resolve(0, None, xff), None);
        assert_eq!(resolve(0, Some("garbage"), []), None);
    }

    #[test]
    fn trusted_hops_count_from_the_right() {
        let cases = [
            (
                1,
                vec!["1.1.1.1"],
                "1.1.1.1",
                "one proxy appended the client",
            ),
            (
                1,
                vec!["9.9.9.9, 1.1.1.1"],
                "1.1.1.1",
                "a spoofed entry on the left is ignored",
            ),
            (
                2,
                vec!["9.9.9.9, 1.1.1.1", "10.0.0.2"],
                "1.1.1.1",
                "two proxies, two headers",
            ),
            (
                3,
                vec!["1.1.1.1"],
                "1.1.1.1",
                "fewer entries than hops: the leftmost",
            ),
            (
                1,
                vec!["[2001:db8::1]:443"],
                "2001:db8::1",
                "v6 with a port",
            ),
        ];
        for (hops, xff, expected, why) in cases {
            assert_eq!(
                resolve(hops, Some("127.0.0.1:1"), xff.iter().copied()),
                ip(expected),
                "{why}"
            );
        }
    }

    #[test]
    fn a_missing_or_broken_header_falls_back_to_the_peer() {
        assert_eq!(resolve(1, Some("127.0.0.1:1"), []), ip("127.0.0.1"));
        assert_eq!(
            resolve(1, Some("127.0.0.1:1"), ["not-an-ip"]),
            ip("127.0.0.1")
        );
    }
}
