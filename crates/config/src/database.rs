//! How the bridge reaches Postgres: one place that parses a `database_url`
//! and connects to it, with TLS exactly as Spin's Postgres client does it.
//!
//! Spin (3.x and 4.x) connects with `tokio-postgres` and `native-tls`: TLS
//! is negotiated unless the URL says `sslmode=disable` (`prefer`, the
//! default, falls back to plain text only when the server offers no TLS;
//! `require` insists), and whenever TLS is used the server's certificate
//! is verified against the system's trust store, host name included. A
//! self-signed development server therefore fails under Spin unless the
//! URL disables TLS, and the bridge fails the same way instead of hiding
//! it. Extra trusted roots ([`PgTls::with_root_pem`], the
//! `--pg-root-ca` flag) are added to the system's; under real Spin the
//! same effect comes from `SSL_CERT_FILE` (OpenSSL reads it).
//!
//! `sslmode=verify-ca`/`verify-full` are libpq spellings that
//! `tokio-postgres`, and so Spin, refuse; [`Database::new`] says so and
//! points at `require`, which already verifies chain and host name.
//!
//! The functions' connections (the host's pools), the migrations and the
//! event path all connect through here.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};
use postgres_native_tls::MakeTlsConnector;
use tokio_postgres::{Client, Config, Socket};

use crate::redact::redact;

/// The stream type of a bridge connection (TLS or not).
pub type TlsStream = <MakeTlsConnector as tokio_postgres::tls::MakeTlsConnect<Socket>>::Stream;

/// A connection's I/O half, to be polled (spawned) beside its [`Client`].
pub type PgConnection = tokio_postgres::Connection<Socket, TlsStream>;

/// Trusted roots for Postgres TLS, beyond the system's.
#[derive(Clone, Default)]
pub struct PgTls {
    roots: Vec<native_tls::Certificate>,
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTls")
            .field("extra_roots", &self.roots.len())
            .finish()
    }
}

impl PgTls {
    /// Adds the certificates of a PEM file as trusted roots.
    ///
    /// # Errors
    /// When the file cannot be read or holds no valid certificate.
    pub fn with_root_file(self, path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading Postgres root CA {}", path.display()))?;
        self.with_root_pem(&pem)
            .with_context(|| format!("Postgres root CA {}", path.display()))
    }

    /// Adds every certificate in `pem` as a trusted root.
    ///
    /// # Errors
    /// When `pem` holds no valid certificate.
    pub fn with_root_pem(mut self, pem: &[u8]) -> anyhow::Result<Self> {
        let certs = native_tls::Certificate::stack_from_pem(pem).context("invalid PEM")?;
        if certs.is_empty() {
            bail!("no certificate in the PEM data");
        }
        self.roots.extend(certs);
        Ok(self)
    }

    /// The connector every Postgres connection of the bridge uses.
    ///
    /// # Errors
    /// When the TLS library cannot be initialised.
    pub fn connector(&self) -> anyhow::Result<MakeTlsConnector> {
        let mut builder = native_tls::TlsConnector::builder();
        for root in &self.roots {
            builder.add_root_certificate(root.clone());
        }
        Ok(MakeTlsConnector::new(
            builder.build().context("building the TLS connector")?,
        ))
    }
}

/// A parsed `database_url` with the TLS settings to reach it.
#[derive(Clone)]
pub struct Database {
    url: String,
    config: Config,
    tls: MakeTlsConnector,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("url", &redact(&self.url))
            .finish()
    }
}

impl Database {
    /// Parses `url` as Spin would.
    ///
    /// # Errors
    /// When the URL is empty or not a connection string Spin accepts.
    pub fn new(url: &str, tls: &PgTls) -> anyhow::Result<Self> {
        let config = parse_url(url)?;
        Ok(Self {
            url: url.to_owned(),
            config,
            tls: tls.connector()?,
        })
    }

    /// The URL as given: the address guests open when it came from the
    /// `database_url` variable they share.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL, for logs: without its password.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    /// The parsed connection settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The TLS connector for connections to this database.
    pub fn tls(&self) -> MakeTlsConnector {
        self.tls.clone()
    }

    /// The same server, another database (for `CREATE DATABASE`).
    pub fn with_dbname(&self, name: &str) -> Self {
        let mut config = self.config.clone();
        config.dbname(name);
        Self {
            url: self.url.clone(),
            config,
            tls: self.tls.clone(),
        }
    }

    /// Opens a connection; the caller polls (spawns) its I/O half.
    ///
    /// # Errors
    /// When the server cannot be reached, refuses the login, or its
    /// certificate does not verify.
    pub async fn connect_raw(&self) -> anyhow::Result<(Client, PgConnection)> {
        self.config
            .connect(self.tls.clone())
            .await
            .with_context(|| format!("connecting to {}", self.redacted()))
    }

    /// Opens a connection and drives it on a background task.
    ///
    /// # Errors
    /// As [`Database::connect_raw`].
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let (client, conn) = self.connect_raw().await?;
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "postgres connection ended");
            }
        });
        Ok(client)
    }
}

/// Parses a connection string with a clear error for what Spin refuses.
///
/// # Errors
/// When `url` is empty, names an `sslmode` Spin does not accept, or is not
/// a valid connection string.
pub fn parse_url(url: &str) -> anyhow::Result<Config> {
    if url.trim().is_empty() {
        bail!("database_url is empty");
    }
    if let Some(mode) = ssl_mode(url)
        && !matches!(mode.as_str(), "disable" | "prefer" | "require")
    {
        bail!(
            "sslmode={mode} in {} is not accepted by Spin's Postgres client: use \
             sslmode=require (it verifies the certificate chain and the host name) or \
             sslmode=disable",
            redact(url)
        );
    }
    url.parse::<Config>()
        .with_context(|| format!("invalid Postgres connection string {}", redact(url)))
}

/// The `sslmode` a URL or key/value connection string names, if any.
fn ssl_mode(url: &str) -> Option<String> {
    let tail = url
        .split_once('?')
        .map_or(url, |(_, query)| query)
        .replace('&', " ");
    tail.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "sslmode")
        .map(|(_, value)| value.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_modes_spin_accepts_parse() {
        for url in [
            "postgres://u@h/db",
            "postgres://u@h/db?sslmode=disable",
            "postgres://u@h/db?application_name=x&sslmode=require",
            "host=h user=u sslmode=prefer",
        ] {
            assert!(parse_url(url).is_ok(), "{url}");
        }
        let disabled = parse_url("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!(
            disabled.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        let default = parse_url("postgres://u@h/db").unwrap();
        assert_eq!(
            default.get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
    }

    #[test]
    fn libpq_only_ssl_modes_are_refused_with_advice() {
        for url in [
            "postgres://u:secret@h/db?sslmode=verify-full",
            "host=h user=u sslmode=verify-ca",
        ] {
            let err = parse_url(url).unwrap_err().to_string();
            assert!(err.contains("sslmode=require"), "{err}");
            assert!(!err.contains("secret"), "{err}");
        }
        assert!(parse_url("").is_err());
    }
}
