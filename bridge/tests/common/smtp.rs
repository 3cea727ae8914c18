//! A real SMTP server per test: aiosmtpd (PyPI, installed by
//! `scripts/setup` into its own virtualenv) running `smtp_server.py` on a
//! free loopback port, writing every message it accepts into a Maildir
//! that [`SmtpServer`] reads and parses. It can be stopped and started
//! again on the same port (an outage), refuses recipients whose local part
//! starts with `refuse` (550) and defers those starting with `busy` (451).
//!
//! ```ignore
//! let smtp = SmtpServer::start().await;
//! let app = TestApp::spawn_with(Options {
//!     extra_vars: smtp.variables(),          // the email sink on, to this server
//!     events: Some(fast()),                  // the event path runs
//!     ..Options::default()
//! })
//! .await;
//! app.register("ada@example.com", "correct horse battery", None).await;
//! let email = smtp.wait_for_email("ada@example.com").await;
//! let token = email.token().unwrap();        // the link's `token`, decoded
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::process::free_port;
use super::root;
use super::subscriber::eventually;

/// The `From` the test apps send with.
pub const FROM: &str = "spinmesh tests <no-reply@spinmesh.test>";

/// How the server protects connections.
#[derive(Debug, Clone, Default)]
pub enum SmtpTlsMode {
    /// Plain SMTP (the sink's `smtp_tls = "none"`).
    #[default]
    Plain,
    /// STARTTLS required, with this certificate and key (PEM files).
    Starttls {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// TLS from the first byte.
    Tls {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
}

/// One aiosmtpd process and its Maildir.
pub struct SmtpServer {
    port: u16,
    dir: PathBuf,
    mode: SmtpTlsMode,
    login: Option<(String, String)>,
    child: Option<Child>,
}

/// The interpreter of the virtualenv `scripts/setup` installs aiosmtpd into.
fn python() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME is set");
    let python = cache.join("spinmesh/smtp-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup (it installs aiosmtpd)",
        python.display()
    );
    python
}

impl SmtpServer {
    /// A plain server on a free port.
    pub async fn start() -> Self {
        Self::start_with(SmtpTlsMode::Plain, None).await
    }

    /// A server protected by `mode`, requiring `login` when given.
    pub async fn start_with(mode: SmtpTlsMode, login: Option<(&str, &str)>) -> Self {
        let dir = std::env::temp_dir().join(format!("spinmesh-smtp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port: free_port(),
            dir,
            mode,
            login: login.map(|(u, p)| (u.to_owned(), p.to_owned())),
            child: None,
        };
        // The free port is free when picked, not when the server binds it:
        // another test's process may take it meanwhile. Another port then.
        for _ in 0..5 {
            if server.try_run().await {
                return server;
            }
            server.port = free_port();
        }
        panic!("the SMTP server did not start on any of five free ports");
    }

    /// Starts the process and waits until it accepts connections; `false`
    /// when it exited without binding its port (its error is on stderr).
    async fn try_run(&mut self) -> bool {
        let mut command = Command::new(python());
        command
            .arg(root().join("bridge/tests/common/smtp_server.py"))
            .args(["--port", &self.port.to_string()])
            .arg("--maildir")
            .arg(self.maildir());
        match &self.mode {
            SmtpTlsMode::Plain => {}
            SmtpTlsMode::Starttls { cert, key } | SmtpTlsMode::Tls { cert, key } => {
                let mode = if matches!(self.mode, SmtpTlsMode::Tls { .. }) {
                    "tls"
                } else {
                    "starttls"
                };
                command
                    .args(["--mode", mode, "--tls-cert"])
                    .arg(cert)
                    .arg("--tls-key")
                    .arg(key);
            }
        }
        if let Some((user, password)) = &self.login {
            command.args(["--user", user, "--password", password]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the SMTP server starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the SMTP server is ready within 30 s")
            .unwrap();
        if ready.as_deref() != Some("ready") {
            return false;
        }
        self.child = Some(child);
        true
    }

    /// Stops the server (SIGKILL, as a crash) and waits until its port
    /// refuses connections.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
        let port = self.port;
        eventually(
            "the SMTP port closes",
            Duration::from_secs(10),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_err()
            },
        )
        .await;
    }

    /// Starts it again on the same port, with the same Maildir.
    pub async fn restart(&mut self) {
        assert!(self.try_run().await, "the SMTP server did not start again");
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application variables that point the email sink here
    /// (`smtp_tls = "none"`: plain SMTP on loopback).
    pub fn variables(&self) -> BTreeMap<String, String> {
        let tls = match self.mode {
            SmtpTlsMode::Plain => "none",
            SmtpTlsMode::Starttls { .. } => "starttls",
            SmtpTlsMode::Tls { .. } => "tls",
        };
        let mut vars = BTreeMap::from([
            ("smtp_host".to_owned(), "127.0.0.1".to_owned()),
            ("smtp_port".to_owned(), self.port.to_string()),
            ("smtp_tls".to_owned(), tls.to_owned()),
            ("smtp_from".to_owned(), FROM.to_owned()),
        ]);
        if let Some((user, password)) = &self.login {
            vars.insert("smtp_username".to_owned(), user.clone());
            vars.insert("smtp_password".to_owned(), password.clone());
        }
        vars
    }

    fn maildir(&self) -> PathBuf {
        self.dir.join("maildir")
    }

    /// Every message received so far, oldest first.
    pub fn emails(&self) -> Vec<Email> {
        let new = self.maildir().join("new");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&new)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| {
                        let modified = e.metadata().and_then(|m| m.modified()).ok();
                        (modified.unwrap_or(std::time::UNIX_EPOCH), e.path())
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files.iter().map(|(_, path)| Email::read(path)).collect()
    }

    /// Waits until `n` messages have arrived; returns them.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Email> {
        eventually(
            &format!("{n} email(s) at the SMTP server"),
            limit,
            || async { self.emails().len() >= n },
        )
        .await;
        self.emails()
    }

    /// Waits (up to 60 s) for a message to `to`; returns the newest.
    pub async fn wait_for_email(&self, to: &str) -> Email {
        eventually(
            &format!("an email to {to}"),
            Duration::from_secs(60),
            || async { self.emails().iter().any(|e| e.is_to(to)) },
        )
        .await;
        self.emails()
            .into_iter()
            .rev()
            .find(|e| e.is_to(to))
            .unwrap()
    }

    /// Every message to `to`.
    pub fn emails_to(&self, to: &str) -> Vec<Email> {
        self.emails().into_iter().filter(|e| e.is_to(to)).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A received message, parsed.
#[derive(Debug, Clone)]
pub struct Email {
    /// The `To` header's addresses.
    pub to: Vec<String>,
    /// `From`.
    pub from: String,
    /// `Subject`, decoded.
    pub subject: String,
    /// `Message-ID`.
    pub message_id: String,
    /// The `text/plain` part, decoded.
    pub text: String,
    /// The `text/html` part, decoded.
    pub html: String,
}

impl Email {
    fn read(path: &Path) -> Self {
        let raw = std::fs::read(path).unwrap();
        let parsed = mailparse::parse_mail(&raw).expect("a MIME message");
        let header = |name: &str| {
            use mailparse::MailHeaderMap;
            parsed.headers.get_first_value(name).unwrap_or_default()
        };
        let to = mailparse::addrparse(&header("To"))
            .map(|list| {
                list.iter()
                    .flat_map(|a| match a {
                        mailparse::MailAddr::Single(s) => vec![s.addr.clone()],
                        mailparse::MailAddr::Group(g) => {
                            g.addrs.iter().map(|s| s.addr.clone()).collect()
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let part = |mime: &str| {
            parsed
                .parts()
                .find(|p| p.ctype.mimetype == mime)
                .and_then(|p| p.get_body().ok())
                .unwrap_or_default()
        };
        Self {
            to,
            from: header("From"),
            subject: header("Subject"),
            message_id: header("Message-ID"),
            text: part("text/plain"),
            html: part("text/html"),
        }
    }

    /// Whether `address` is among the recipients (case-insensitive).
    pub fn is_to(&self, address: &str) -> bool {
        self.to.iter().any(|a| a.eq_ignore_ascii_case(address))
    }

    /// The first link in the text that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> Option<String> {
        self.text
            .split_whitespace()
            .find(|word| word.starts_with(prefix))
            .map(str::to_owned)
    }

    /// The `token` query parameter of the first link in the text, decoded.
    pub fn token(&self) -> Option<String> {
        let link = self.link("http")?;
        let query = link.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (name == "token").then(|| percent_decode(value))
        })
    }
}

/// Decodes `%XX` escapes and `+` (a query string's space).
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
