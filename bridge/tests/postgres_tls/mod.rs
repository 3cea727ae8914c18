//! Postgres over TLS, as Spin does it: a real server started with
//! `ssl=on` and a certificate this test makes, accepting TLS connections
//! only. The host (for the functions) and the bridge's own connections
//! must connect when the certificate chains to a trusted root and names the
//! host, and refuse otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Options, TestApp, root};
use bridge::database::{Database, PgTls};

/// A throw-away Postgres cluster that only accepts TLS connections.
struct TlsPostgres {
    dir: PathBuf,
    port: u16,
    server: Child,
    /// The PEM of the CA that signed the server's certificate.
    ca_pem: String,
}

/// The newest installed server binaries (Debian keeps them per version).
fn server_bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| Some(e.ok()?.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Postgres refuses to run as root: as root, run it as `postgres`.
fn as_server_user(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TlsPostgres {
    /// Makes a CA and a server certificate for `127.0.0.1`, initialises a
    /// cluster and starts it; returns once it accepts a TLS connection.
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("spinmesh-tls-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();

        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "spinmesh test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join("server.crt"), server_cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();

        let data = dir.join("data");
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown the cluster directory");
        }
        let chmod = Command::new("chmod")
            .arg("600")
            .arg(dir.join("server.key"))
            .status()
            .unwrap();
        assert!(chmod.success());

        let init = as_server_user(&server_bin("initdb"))
            .args([
                "--auth=trust",
                "--username=postgres",
                "--no-sync",
                "--locale=C",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("initdb runs");
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        // TLS connections from loopback only; plain ones are refused.
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n",
        )
        .unwrap();

        let port = free_port();
        let server = as_server_user(&server_bin("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .args(["-c", "ssl=on", "-c", "fsync=off"])
            .arg("-c")
            .arg(format!(
                "ssl_cert_file={}",
                dir.join("server.crt").display()
            ))
            .arg("-c")
            .arg(format!("ssl_key_file={}", dir.join("server.key").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres starts");
        let me = Self {
            dir,
            port,
            server,
            ca_pem: ca.pem(),
        };
        me.wait_until_ready().await;
        me
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres{query}", self.port)
    }

    fn trusted(&self) -> PgTls {
        PgTls::default()
            .with_root_pem(self.ca_pem.as_bytes())
            .unwrap()
    }

    async fn wait_until_ready(&self) {
        let db =
            Database::new(&self.url("127.0.0.1", "?sslmode=require"), &self.trusted()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match db.connect().await {
                Ok(client) => {
                    client.simple_query("SELECT 1").await.unwrap();
                    return;
                }
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("the TLS Postgres never became ready: {err:#}"),
            }
        }
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The probe app, trusting `tls`'s roots for its Postgres connections.
async fn probe(tls: PgTls) -> TestApp {
    TestApp::spawn_with(Options {
        manifest: root().join("bridge/tests/probe/spin.toml"),
        migrate: false,
        extra_vars: BTreeMap::from([("secret_token".to_string(), "s3cret".to_string())]),
        pg_tls: tls,
        ..Options::default()
    })
    .await
}

/// What a function sees when it opens `url` and runs `SELECT 1`.
async fn function_connects(app: &TestApp, url: &str) -> crate::common::Reply {
    app.get(
        &format!("/probe/pg?url={}", crate::common::urlencode(url)),
        None,
    )
    .await
}

#[tokio::test]
async fn functions_reach_a_tls_only_server_whose_certificate_is_trusted() {
    let pg = TlsPostgres::start().await;
    let app = probe(pg.trusted()).await;
    for query in ["?sslmode=require", ""] {
        let r = function_connects(&app, &pg.url("127.0.0.1", query)).await;
        assert_eq!(r.status, 200, "sslmode in {query:?}: {}", r.text);
    }
    // The server really requires TLS: a plain connection is turned away.
    let r = function_connects(&app, &pg.url("127.0.0.1", "?sslmode=disable")).await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert!(r.text.contains("no encryption"), "{}", r.text);
}

#[tokio::test]
async fn functions_refuse_a_certificate_from_an_untrusted_ca() {
    let pg = TlsPostgres::start().await;
    let app = probe(PgTls::default()).await;
    for query in ["?sslmode=require", ""] {
        let r = function_connects(&app, &pg.url("127.0.0.1", query)).await;
        assert_eq!(r.status, 502, "sslmode in {query:?}: {}", r.text);
        assert_eq!(r.json()["form"], "connection-failed", "{}", r.text);
        assert!(
            r.text.contains("certificate verify failed"),
            "the reason is the certificate: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn the_bridge_verifies_chain_and_host_name_and_migrates_over_tls() {
    let pg = TlsPostgres::start().await;

    // The certificate names 127.0.0.1, not localhost: verify-full
    // semantics even under `sslmode=require`, as in Spin.
    let wrong_name =
        Database::new(&pg.url("localhost", "?sslmode=require"), &pg.trusted()).unwrap();
    let err = format!("{:#}", wrong_name.connect().await.unwrap_err());
    assert!(err.contains("certificate verify failed"), "{err}");

    let untrusted =
        Database::new(&pg.url("127.0.0.1", "?sslmode=require"), &PgTls::default()).unwrap();
    let err = format!("{:#}", untrusted.connect().await.unwrap_err());
    assert!(err.contains("certificate verify failed"), "{err}");

    let name = format!("spinmesh_tls_{}", uuid::Uuid::new_v4().simple());
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{name}?sslmode=require",
        pg.port
    );
    let db = Database::new(&url, &pg.trusted()).unwrap();
    let migrations = bridge::migrate::read_dir(&root().join("migrations")).unwrap();
    let applied = bridge::migrate::run(&db, &migrations).await.unwrap();
    assert_eq!(applied.len(), migrations.len());
    let client = db.connect().await.unwrap();
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the bridge's own connection uses TLS");
}

#[test]
fn libpq_only_ssl_modes_are_refused_as_spin_refuses_them() {
    let err = Database::new(
        "postgres://postgres@127.0.0.1/db?sslmode=verify-full",
        &PgTls::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("sslmode=require"), "{err}");
}
