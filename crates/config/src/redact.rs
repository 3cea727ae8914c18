//! Connection strings in logs and errors: credentials never leave the
//! process, whichever part of the bridge reports the address.

/// A URL with any `user:password@` removed, safe to log.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => "<unparsable url>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_credentials() {
        assert_eq!(redact("postgres://u:secret@h:1/db"), "postgres://h:1/db");
    }

    #[test]
    fn keeps_an_address_without_credentials() {
        assert_eq!(
            redact("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
    }
}
