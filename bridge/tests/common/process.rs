//! `bridge up` as the real process an operator runs.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge::keys::JwtKeys;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use super::subscriber::eventually;
use super::{UNLIMITED, database_url, root};

/// A `bridge up` process on its own port and database.
pub struct Bridge {
    child: Child,
    pub base: String,
    /// Its admin listener's `GET /metrics`.
    pub metrics: String,
}

impl Bridge {
    /// Starts `bridge up` (migrating `database`, which the caller drops)
    /// with the suite's test settings and `env` on top, and waits until it
    /// answers.
    pub async fn start(database: &str, keys: &JwtKeys, env: &[(&str, &str)]) -> Self {
        let mut child = command(database, keys)
            .args(["up", "--listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--retry-base-ms", "20", "--shutdown-timeout", "10"])
            .env("SPIN_VARIABLE_RATE_LIMIT_REQUESTS", UNLIMITED)
            .env("SPIN_VARIABLE_RATE_LIMIT_LOGIN_REQUESTS", UNLIMITED)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the bridge binary runs");
        let stdout = Printed::collect(child.stdout.take().unwrap());
        let bridge = Self {
            base: stdout.after("Serving ").await,
            metrics: stdout.after("Metrics at ").await,
            child,
        };
        let client = reqwest::Client::new();
        let health = format!("{}/auth/health", bridge.base);
        // From an address of its own (where a test trusts a proxy hop), so
        // waiting never spends the quota a rate limit test counts on.
        let prober = format!("2001:db8:ffff::{:x}", rand_u16());
        eventually("bridge up answers", Duration::from_secs(120), || async {
            client
                .get(&health)
                .header("x-forwarded-for", &prober)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        bridge
    }

    /// Sends SIGTERM and returns the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("still running").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("bridge up exits within its shutdown timeout")
            .unwrap()
    }
}

/// The `bridge` binary run from the checkout's root on `database` with
/// `keys`, the suite's signing secret (what `bridge up` and `bridge
/// relay` share) and sealing key (what a restarted `bridge up` must still
/// open: sealed tokens wait in the outbox across restarts), MongoDB off;
/// the caller adds the subcommand.
pub fn command(database: &str, keys: &JwtKeys) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bridge"));
    command
        .current_dir(root())
        .env("SPIN_VARIABLE_DATABASE_URL", database_url(database))
        .env("SPIN_VARIABLE_JWT_PRIVATE_KEY", &keys.private_key)
        .env("SPIN_VARIABLE_JWT_PUBLIC_KEY", &keys.public_key)
        .env("SPIN_VARIABLE_BRIDGE_SIGNING_SECRET", SIGNING_SECRET)
        .env("SPIN_VARIABLE_MESSAGE_SEALING_KEY", SEALING_KEY)
        .env_remove("SPIN_VARIABLE_MONGO_URL");
    command
}

/// The signing secret of the processes [`command`] starts.
const SIGNING_SECRET: &str = "process-test-secret";

/// The sealing key every `bridge` process of the suite shares.
const SEALING_KEY: &str = "process-test-sealing-key";

/// What a process printed, line by line, collected as it comes (so the
/// process never blocks on a full pipe).
#[derive(Clone, Default)]
pub struct Printed {
    lines: Arc<Mutex<Vec<String>>>,
    ended: Arc<AtomicBool>,
}

impl Printed {
    /// Collects `stream` from now on.
    pub fn collect(stream: impl AsyncRead + Unpin + Send + 'static) -> Self {
        let printed = Self::default();
        let collected = printed.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                collected.lines.lock().unwrap().push(line);
            }
            collected.ended.store(true, Ordering::SeqCst);
        });
        printed
    }

    /// The rest of the first line that starts with `prefix`, up to a space:
    /// a `bridge` process listening on port 0 says where it listens
    /// (`Serving <url> (application …)`, `Metrics at <url>`), which no port
    /// picked before it starts can race. Panics if the stream ends first.
    pub async fn after(&self, prefix: &str) -> String {
        let mut found = None;
        eventually(
            &format!("a printed line starting with {prefix:?}"),
            Duration::from_secs(120),
            || {
                let ended = self.ended.load(Ordering::SeqCst);
                found = self.lines.lock().unwrap().iter().find_map(|l| {
                    let rest = l.strip_prefix(prefix)?;
                    Some(rest.split(' ').next().unwrap_or_default().to_string())
                });
                assert!(
                    found.is_some() || !ended,
                    "the process ended without printing {prefix:?}: {:?}",
                    self.lines()
                );
                std::future::ready(found.is_some())
            },
        )
        .await;
        found.unwrap()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// A port nothing listens on now (the OS's pick for port 0). Another
/// process may take it before whoever it is meant for binds it: a `bridge`
/// process listens on port 0 and says where instead ([`Printed::after`]).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rand_u16() -> u16 {
    let id = uuid::Uuid::new_v4();
    u16::from_be_bytes([id.as_bytes()[0], id.as_bytes()[1]])
}
