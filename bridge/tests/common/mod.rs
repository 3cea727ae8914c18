//! Test harness: starts the real host on a free port against a fresh
//! Postgres database and the local Redis, and talks HTTP to it.

#![allow(dead_code)]

pub mod cloudevents;
pub mod lifecycle;
pub mod metrics;
pub mod mongo;
pub mod openapi;
pub mod posts;
pub mod process;
pub mod proxy;
pub mod saga;
pub mod scenarios;
pub mod smtp;
pub mod store;
pub mod subscriber;
pub mod transport;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bridge::app::{self, AppOptions, RunningApp};
use bridge::host::services::PoolConfig;
use bridge::host::{HostConfig, PgCompat};
use bridge::keys::JwtKeys;
use serde_json::{Value, json};

/// The repository root. Taken from the environment cargo and nextest set
/// when running the test, so a test binary reused from another checkout
/// sharing the build cache still reads this checkout's files.
pub fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("..")
}

/// With `TEST_LOG` set (a tracing filter such as `bridge=debug`), the
/// bridge's logs go to the test's output.
pub fn init_logs() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Percent-encodes `s` for a query string.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The bridge's log lines, captured for assertions about what it logged.
/// Each nextest test runs in its own process, so the global subscriber
/// this installs is the test's own.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    /// Installs the capture; `None` if a subscriber was installed already.
    pub fn capture() -> Option<Self> {
        let logs = Self::default();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(logs.clone())
            .try_init()
            .ok()?;
        Some(logs)
    }

    /// Installs a capture of JSON lines (as `bridge --log-format json`
    /// writes them) at `filter`; `None` if a subscriber was installed
    /// already.
    pub fn capture_json(filter: &str) -> Option<Self> {
        let logs = Self::default();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .json()
            .flatten_event(true)
            .with_writer(logs.clone())
            .try_init()
            .ok()?;
        Some(logs)
    }

    /// The captured lines that parse as JSON objects.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A running application on its own database.
pub struct TestApp {
    pub running: Option<RunningApp>,
    pub addr: SocketAddr,
    /// The admin listener (`GET /metrics`).
    pub admin: Option<SocketAddr>,
    pub base: String,
    pub client: reqwest::Client,
    pub keys: JwtKeys,
    pub database: String,
    /// The app's `message_sealing_key`: opens the one-time tokens sealed
    /// inside its events.
    pub sealing_key: String,
}

/// A rate limit no test reaches.
pub const UNLIMITED: &str = "1000000000";

pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// The `database_url` of a test database on the local server. The local
/// server's TLS certificate is self-signed, so without `sslmode=disable`
/// the host (like Spin) refuses it.
pub fn database_url(database: &str) -> String {
    format!("{PG_SERVER}/{database}?sslmode=disable")
}

/// A client of the test database `database`, its connection driven on the
/// test's runtime.
pub async fn connect_db(database: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&database_url(database), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// The test's database, as the bridge's own code takes it.
pub fn database(database: &str) -> bridge::database::Database {
    bridge::database::Database::new(&database_url(database), &Default::default())
        .expect("a valid database URL")
}

pub struct Options {
    pub manifest: PathBuf,
    pub migrate: bool,
    pub request_timeout: Duration,
    pub max_memory_bytes: usize,
    pub extra_vars: BTreeMap<String, String>,
    pub events: Option<bridge::events::dispatch::DispatchConfig>,
    pub broker: bridge::app::BrokerConfig,
    /// Strict by default: the suite fails where Spin 4.0.x would misbehave.
    pub pg_compat: PgCompat,
    pub pg_tls: bridge::database::PgTls,
    /// The Postgres server the app reaches (`postgres://user@host:port`);
    /// the local one by default. The test's own connections go to the
    /// local server directly.
    pub pg_server: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            manifest: root().join("spin.toml"),
            migrate: true,
            request_timeout: Duration::from_secs(30),
            max_memory_bytes: 128 << 20,
            extra_vars: BTreeMap::new(),
            events: None,
            broker: Default::default(),
            pg_compat: PgCompat::Strict,
            pg_tls: Default::default(),
            pg_server: None,
        }
    }
}

impl Options {
    /// An app whose database does not exist (Postgres answers, refusing
    /// the connection), unmigrated.
    pub fn missing_database() -> Self {
        let missing = database_url(&format!(
            "spinmesh_missing_{}",
            uuid::Uuid::new_v4().simple()
        ));
        Self {
            migrate: false,
            extra_vars: BTreeMap::from([("database_url".to_string(), missing)]),
            ..Self::default()
        }
    }
}

impl TestApp {
    /// The spinmesh application on a fresh database.
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(opts: Options) -> Self {
        init_logs();
        let database = format!("spinmesh_test_{}", uuid::Uuid::new_v4().simple());
        let keys = JwtKeys::generate();
        let mut vars = BTreeMap::from([
            (
                "database_url".to_string(),
                match &opts.pg_server {
                    Some(server) => format!("{server}/{database}?sslmode=disable"),
                    None => database_url(&database),
                },
            ),
            ("jwt_private_key".to_string(), keys.private_key.clone()),
            ("jwt_public_key".to_string(), keys.public_key.clone()),
            // Every test's requests come from 127.0.0.1: limits high enough
            // never to bite, still counted in Redis on every request. The
            // rate limit tests set their own.
            ("rate_limit_requests".to_string(), UNLIMITED.to_string()),
            (
                "rate_limit_login_requests".to_string(),
                UNLIMITED.to_string(),
            ),
            (
                "message_sealing_key".to_string(),
                hex::encode(JwtKeys::random_bytes::<32>()),
            ),
        ]);
        vars.extend(opts.extra_vars);
        let sealing_key = vars["message_sealing_key"].clone();
        let host = HostConfig {
            request_timeout: opts.request_timeout,
            max_memory_bytes: opts.max_memory_bytes,
            max_concurrency: 32,
            variable_overrides: vars,
            pools: PoolConfig {
                pg_compat: opts.pg_compat,
                pg_tls: opts.pg_tls,
                ..PoolConfig::default()
            },
            ..HostConfig::default()
        };
        let running = app::start(AppOptions {
            manifest: opts.manifest,
            listen: "127.0.0.1:0".parse().unwrap(),
            migrations: opts.migrate.then(|| root().join("migrations")),
            host,
            events: opts.events,
            broker: opts.broker.clone(),
            // Every test app records metrics, as `bridge up` does.
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        })
        .await
        .expect("the app starts");
        let addr = running.addr;
        Self {
            admin: running.admin_addr,
            base: running.url(),
            running: Some(running),
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            keys,
            database,
            sealing_key,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Reply::from(req.send().await.expect("request sent")).await
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Reply {
        self.send("POST", path, body.to_string().into_bytes(), token)
            .await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Reply::from(req.send().await.expect("request sent")).await
    }

    // --- one helper per endpoint ---

    pub async fn register(&self, email: &str, password: &str, username: Option<&str>) -> Reply {
        let mut body = json!({"email": email, "password": password});
        if let Some(u) = username {
            body["username"] = json!(u);
        }
        self.post_json("/auth/register", &body, None).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post_json(
            "/auth/login",
            &json!({"email": email, "password": password}),
            None,
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post_json(
            "/auth/refresh",
            &json!({"refresh_token": refresh_token}),
            None,
        )
        .await
    }

    pub async fn logout(&self, access: &str, refresh: Option<&str>) -> Reply {
        let body = match refresh {
            Some(r) => json!({"refresh_token": r}),
            None => json!({}),
        };
        self.post_json("/auth/logout", &body, Some(access)).await
    }

    pub async fn me(&self, access: &str) -> Reply {
        self.get("/auth/me", Some(access)).await
    }

    /// A connection to the app's database.
    pub async fn db(&self) -> tokio_postgres::Client {
        connect_db(&self.database).await
    }

    /// Registers and logs in a fresh user; returns (email, login body).
    pub async fn signed_in_user(&self) -> (String, Value) {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let r = self.register(&email, "correct horse battery", None).await;
        assert_eq!(r.status, 201, "register: {}", r.text);
        let r = self.login(&email, "correct horse battery").await;
        assert_eq!(r.status, 200, "login: {}", r.text);
        (email, r.json())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.running.take());
        drop_database_blocking(&self.database);
    }
}

/// Drops a test database from a separate runtime, for `Drop` impls (which
/// cannot await).
pub fn drop_database_blocking(database: &str) {
    let database = database.to_owned();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            if let Ok((client, conn)) =
                tokio_postgres::connect(&format!("{PG_SERVER}/postgres"), tokio_postgres::NoTls)
                    .await
            {
                tokio::spawn(conn);
                let _ = client
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
                    ))
                    .await;
            }
        });
    })
    .join();
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn from(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Self {
            status,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Asserts a problem+json response with this status.
    pub fn assert_problem(&self, status: u16, context: &str) {
        assert_eq!(self.status, status, "{context}: body {}", self.text);
        assert!(
            self.content_type().starts_with("application/problem+json"),
            "{context}: content-type {:?}",
            self.content_type()
        );
        let body = self.json();
        assert_eq!(body["status"], status, "{context}: {body}");
        assert!(
            body["type"].is_string() && body["title"].is_string(),
            "{context}: {body}"
        );
    }
}

/// A finished command's stdout then stderr, for assertions and messages.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
