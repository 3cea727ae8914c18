//! `bridge up` as the real process, its stderr collected line by line:
//! what an operator (or a developer without a mail server) reads.

use std::process::Stdio;
use std::time::Duration;

use bridge::keys::JwtKeys;
use tokio::process::Child;

use crate::common::process::{Printed, command};
use crate::common::subscriber::eventually;
use crate::common::{UNLIMITED, connect_db, drop_database_blocking};

/// The sealing key of the processes started here.
pub const SEALING_KEY: &str = "bridge-up-test-sealing-key";

/// A running `bridge up` on its own port and database (dropped with it).
pub struct BridgeUp {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    database: String,
    stderr: Printed,
}

impl BridgeUp {
    /// Starts it with `env` on top of the suite's settings, no SMTP server
    /// or SMS gateway unless `env` names one, and waits until it answers.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let database = format!("spinmesh_test_{}", uuid::Uuid::new_v4().simple());
        let mut child = command(&database, &JwtKeys::generate())
            .args(["up", "--listen", "127.0.0.1:0"])
            .args(["--admin-listen", "off", "--retry-base-ms", "20"])
            .env("SPIN_VARIABLE_MESSAGE_SEALING_KEY", SEALING_KEY)
            .env("SPIN_VARIABLE_RATE_LIMIT_REQUESTS", UNLIMITED)
            .env_remove("SPIN_VARIABLE_SMTP_HOST")
            .env_remove("SPIN_VARIABLE_SMS_GATEWAY_URL")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the bridge binary runs");
        let stderr = Printed::collect(child.stderr.take().unwrap());
        let base = Printed::collect(child.stdout.take().unwrap())
            .after("Serving ")
            .await;
        let up = Self {
            child,
            base,
            database,
            stderr,
        };
        let client = reqwest::Client::new();
        let health = format!("{}/notifications/health", up.base);
        eventually("bridge up answers", Duration::from_secs(120), || async {
            client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        up
    }

    /// Waits until a line of its stderr contains `wanted`.
    pub async fn logged(&self, wanted: &str) {
        eventually(
            &format!("a log line with {wanted:?}"),
            Duration::from_secs(60),
            || async { self.lines().iter().any(|l| l.contains(wanted)) },
        )
        .await;
    }

    /// Its stderr so far.
    pub fn lines(&self) -> Vec<String> {
        self.stderr.lines()
    }

    /// A connection to its database.
    pub async fn db(&self) -> tokio_postgres::Client {
        connect_db(&self.database).await
    }
}

impl Drop for BridgeUp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        drop_database_blocking(&self.database);
    }
}
