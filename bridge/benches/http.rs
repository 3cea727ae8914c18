//! `cargo bench -p bridge --bench http`: request throughput and latency of
//! the embedded host against a plain native hyper server answering the same
//! bytes, measured in one run on one machine, plus instantiation time,
//! restart time with a warm compile cache and idle resident memory, and
//! the posts routes (first page, writing a post) beside `/auth/health`,
//! and the cost of rate limiting (`/auth/health` and `/auth/me` on a second
//! app with limits on — a counted Redis round trip per request — against
//! the first, which has them off), and the cost of recording metrics
//! (`/auth/health` before and after the Prometheus recorder is installed).
//!
//! Knobs (environment): BENCH_SECONDS (default 5), BENCH_CONNECTIONS (32).
//! Needs the components built (`scripts/build-functions`), Postgres and Redis.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bridge::app::{self, AppOptions};
use bridge::host::HostConfig;
use bridge::keys::JwtKeys;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1 as server_http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[path = "support/allocator.rs"]
mod allocator;
#[path = "support/load.rs"]
mod load;

use load::{RequestSpec, Stats, load, percentile, row};

/// Alternating rounds of the rate-limiting comparison.
const ROUNDS: usize = 5;

const HEALTH_BODY: &str = r#"{"status":"ok","service":"auth"}"#;

async fn native_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            stream.set_nodelay(true).ok();
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(HEALTH_BODY.as_bytes())))
                            .unwrap(),
                    )
                });
                let _ = server_http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Starts `bridge up` as a process and times until its first 200. It
/// keeps the benchmark's secrets: under a key of its own, the account
/// emails the earlier rounds left in the outbox would not open and would
/// be dead-lettered.
fn restart_probe(
    database_url: &str,
    keys: &JwtKeys,
    secrets: &[(&str, &str)],
) -> (Duration, Option<u64>) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bridge"))
        .current_dir(root())
        .args([
            "up",
            "--no-migrate",
            "--admin-listen",
            "off",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("SPIN_VARIABLE_DATABASE_URL", database_url)
        .env("SPIN_VARIABLE_JWT_PRIVATE_KEY", &keys.private_key)
        .env("SPIN_VARIABLE_JWT_PUBLIC_KEY", &keys.public_key)
        .env("SPIN_VARIABLE_RATE_LIMIT_REQUESTS", "0")
        .env("SPINMESH_LOG", "warn")
        .envs(
            secrets
                .iter()
                .map(|(name, value)| (format!("SPIN_VARIABLE_{}", name.to_uppercase()), *value)),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn bridge");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = None;
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ =
                s.write_all(b"GET /auth/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                ready = Some(started.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    (ready.expect("bridge answered within 60 s"), rss)
}

/// The posts routes: the first page of a list longer than a page, and
/// writing a post (its row and its `post.created` outbox row, one
/// statement; JWT verification of a token already marked in Redis).
fn posts(
    load_rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    token: &str,
    conns: usize,
    duration: Duration,
) -> (Stats, Stats) {
    let mut write = RequestSpec::post_json(
        "/posts",
        &serde_json::json!({
            "title": "Benchmarking Spin functions",
            "body": "A post of a few sentences, as a blog would have it. ".repeat(8),
            "tags": ["bench", "wasm"],
        }),
    );
    write
        .headers
        .push(("authorization".to_string(), format!("Bearer {token}")));
    // Enough posts for a full first page, and a warm-up of both routes.
    load_rt.block_on(load(addr, &write, 4, Duration::from_millis(500)));
    let list = RequestSpec::get("/posts?limit=20", None);
    load_rt.block_on(load(addr, &list, conns, Duration::from_millis(500)));
    let listed = load_rt.block_on(load(addr, &list, conns, duration));
    row("host GET /posts?limit=20 (PG, profiles joined)", &listed);
    let written = load_rt.block_on(load(addr, &write, conns, duration));
    row("host POST /posts (JWT+Redis, PG insert+outbox)", &written);
    (listed, written)
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let conns: usize = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    let duration = Duration::from_secs(seconds);

    // Servers on a 2-thread runtime; the load generator on its own thread.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let load_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let database = "spinmesh_bench";
    let database_url = format!("postgres://postgres@127.0.0.1:5432/{database}?sslmode=disable");
    let keys = JwtKeys::generate();
    // The same app twice: rate limiting off (the baseline every other row
    // uses) and on, with a quota the load never spends. The token marks'
    // secret is shared so one token serves both.
    let mark_secret = hex::encode(JwtKeys::random_bytes::<32>());
    let sealing_key = hex::encode(JwtKeys::random_bytes::<32>());
    let start = |rate_limit_requests: &str| {
        let host = HostConfig {
            record_timings: true,
            variable_overrides: [
                ("database_url".to_string(), database_url.clone()),
                ("jwt_private_key".to_string(), keys.private_key.clone()),
                ("jwt_public_key".to_string(), keys.public_key.clone()),
                ("token_mark_secret".to_string(), mark_secret.clone()),
                ("message_sealing_key".to_string(), sealing_key.clone()),
                (
                    "rate_limit_requests".to_string(),
                    rate_limit_requests.to_string(),
                ),
                (
                    "rate_limit_login_requests".to_string(),
                    rate_limit_requests.to_string(),
                ),
            ]
            .into(),
            ..HostConfig::default()
        };
        server_rt
            .block_on(app::start(AppOptions {
                manifest: root().join("spin.toml"),
                listen: "127.0.0.1:0".parse().unwrap(),
                migrations: Some(root().join("migrations")),
                host,
                events: None,
                broker: Default::default(),
                admin_listen: None,
            }))
            .expect("host starts")
    };
    let running = start("0");
    // The rate-limiting comparison runs on a pair of apps started and
    // warmed alike, differing only in the limits: the first app has served
    // every other case by then (its database pool, instance slots and
    // recorded timings have a history the limited app's have not).
    let unlimited = start("0");
    let limited = start("1000000000");
    let native = server_rt.block_on(native_server());
    let host_addr = running.addr;

    // A user and a token for /auth/me.
    let token = load_rt.block_on(async {
        let client = reqwest::Client::new();
        let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
        let body = serde_json::json!({"email": email, "password": "benchmark-password"});
        let base = format!("http://{host_addr}");
        let r = client
            .post(format!("{base}/auth/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "register");
        let r: serde_json::Value = client
            .post(format!("{base}/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["access_token"].as_str().expect("token").to_string()
    });

    println!(
        "spinmesh HTTP benchmark: {seconds} s per case, {conns} connections, 2 server threads"
    );
    // Warm-up (connection pools, caches).
    load_rt.block_on(load(
        host_addr,
        &RequestSpec::get("/auth/me", Some(&token)),
        conns,
        Duration::from_secs(1),
    ));
    load_rt.block_on(load(
        native,
        &RequestSpec::get("/health", None),
        conns,
        Duration::from_secs(1),
    ));
    running.host.take_instantiation_timings();

    let native_stats = load_rt.block_on(load(
        native,
        &RequestSpec::get("/health", None),
        conns,
        duration,
    ));
    row("native hyper GET /health", &native_stats);
    let health = load_rt.block_on(load(
        host_addr,
        &RequestSpec::get("/auth/health", None),
        conns,
        duration,
    ));
    row("host GET /auth/health", &health);
    let mut inst = running.host.take_instantiation_timings();
    let me = load_rt.block_on(load(
        host_addr,
        &RequestSpec::get("/auth/me", Some(&token)),
        conns,
        duration,
    ));
    row("host GET /auth/me (JWT+Redis+PG)", &me);
    inst.extend(running.host.take_instantiation_timings());
    inst.sort_unstable();
    let (list_posts, write_posts) = posts(&load_rt, host_addr, &token, conns, duration);
    // Rate limiting on against off, in alternating rounds (the machine's
    // two cores are shared with Redis and the load generator, and single
    // runs drift by tens of percent): the median round's cost is reported.
    for warm in [unlimited.addr, limited.addr] {
        load_rt.block_on(load(
            warm,
            &RequestSpec::get("/auth/me", Some(&token)),
            conns,
            Duration::from_secs(1),
        ));
    }
    let round = duration.div_f64(2.0).max(Duration::from_secs(1));
    let mut health_costs = Vec::new();
    let mut me_costs = Vec::new();
    let mut unrecorded = Vec::new();
    let mut last = None;
    for n in 0..ROUNDS {
        // Which app goes first alternates: whatever the machine is still
        // finishing from the step before (the event path working off the
        // posts' events, a neighbour's burst) falls on both alike.
        let pair = |path: &str, token: Option<&str>| {
            let spec = RequestSpec::get(path, token);
            let run = |addr| load_rt.block_on(load(addr, &spec, conns, round));
            if n % 2 == 0 {
                let off = run(unlimited.addr);
                (off, run(limited.addr))
            } else {
                let on = run(limited.addr);
                (run(unlimited.addr), on)
            }
        };
        let health_pair = pair("/auth/health", None);
        let me_pair = pair("/auth/me", Some(&token));
        unrecorded.push(health_pair.0.rps());
        health_costs.push(1.0 - health_pair.1.rps() / health_pair.0.rps());
        me_costs.push(1.0 - me_pair.1.rps() / me_pair.0.rps());
        last = Some((health_pair, me_pair));
    }
    let ((_, limited_health), (_, limited_me)) = last.expect("at least one round");
    row("host GET /auth/health, rate limited", &limited_health);
    row("host GET /auth/me, rate limited", &limited_me);
    // Metrics: the same rounds of /auth/health once the Prometheus
    // recorder is installed (as `bridge up` runs by default). A recorder
    // cannot be removed again, so these rounds come after the ones above.
    bridge::telemetry::recorder().expect("the bench's recorder");
    let mut recorded = Vec::new();
    for _ in 0..ROUNDS {
        let spec = RequestSpec::get("/auth/health", None);
        recorded.push(
            load_rt
                .block_on(load(unlimited.addr, &spec, conns, round))
                .rps(),
        );
    }

    let ratio = health.rps() / native_stats.rps();
    println!();
    println!(
        "ratio host/native (trivial route): {:.1}%   (target >= 40%)",
        ratio * 100.0
    );
    println!(
        "instantiation: p50 {} us, p99 {} us over {} instances   (target p50 <= 50 us)",
        percentile(&inst, 0.5),
        percentile(&inst, 0.99),
        inst.len()
    );
    println!("GET /auth/me: {:.0} req/s   (target >= 10000)", me.rps());
    println!(
        "GET /posts (first page of 20): {:.0} req/s = {:.0} % of /auth/health; POST /posts: {:.0} req/s = {:.0} %",
        list_posts.rps(),
        100.0 * list_posts.rps() / health.rps(),
        write_posts.rps(),
        100.0 * write_posts.rps() / health.rps()
    );

    let median = |costs: &mut Vec<f64>| {
        costs.sort_by(f64::total_cmp);
        costs[costs.len() / 2]
    };
    let rounds = |costs: &[f64]| {
        costs
            .iter()
            .map(|c| format!("{:.0}", c * 100.0))
            .collect::<Vec<_>>()
            .join("/")
    };
    let (health_rounds, me_rounds) = (rounds(&health_costs), rounds(&me_costs));
    println!(
        "rate limiting costs (median of {ROUNDS} alternating rounds): /auth/health {:.1} % of req/s (rounds {health_rounds} %), /auth/me {:.1} % (rounds {me_rounds} %)   (target <= 15 % on /auth/health)",
        100.0 * median(&mut health_costs),
        100.0 * median(&mut me_costs),
    );

    let (off, on) = (median(&mut unrecorded), median(&mut recorded));
    println!(
        "metrics recording costs: /auth/health {:.1} % of req/s ({off:.0} req/s median of {ROUNDS} rounds without a recorder, {on:.0} with)",
        100.0 * (1.0 - on / off)
    );

    drop(limited);
    drop(running);
    let secrets = [
        ("token_mark_secret", mark_secret.as_str()),
        ("message_sealing_key", sealing_key.as_str()),
    ];
    let (first, _) = restart_probe(&database_url, &keys, &secrets);
    let (warm, rss) = restart_probe(&database_url, &keys, &secrets);
    println!(
        "restart to first answered request: {:.0} ms (first start this run {:.0} ms)   (target < 1000 ms with warm cache)",
        warm.as_secs_f64() * 1000.0,
        first.as_secs_f64() * 1000.0
    );
    match rss {
        Some(kib) => println!(
            "bridge up idle resident memory: {:.1} MiB   (target <= 100 MB)",
            kib as f64 / 1024.0
        ),
        None => println!("bridge up idle resident memory: unavailable (/proc not readable)"),
    }
}
