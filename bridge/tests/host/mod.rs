//! The embedded host itself, exercised through the test-only `probe` guest:
//! routing, Spin's request headers, limits, variables, outbound checks, and
//! the Spin-only import rule for every built component.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Logs, Options, TestApp, root, urlencode};
use bridge::host::PgCompat;

async fn probe() -> TestApp {
    probe_with(Duration::from_secs(30)).await
}

async fn probe_with(timeout: Duration) -> TestApp {
    probe_opts(Options {
        request_timeout: timeout,
        ..Options::default()
    })
    .await
}

/// The probe app with `opts` (its manifest, variables and limits filled in).
async fn probe_opts(opts: Options) -> TestApp {
    TestApp::spawn_with(Options {
        manifest: root().join("bridge/tests/probe/spin.toml"),
        migrate: false,
        max_memory_bytes: 64 << 20,
        extra_vars: BTreeMap::from([("secret_token".to_string(), "s3cret".to_string())]),
        ..opts
    })
    .await
}

/// Runs `sql` through the probe's raw `query` on the local server.
async fn probe_query(app: &TestApp, sql: &str) -> crate::common::Reply {
    let url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
    app.get(
        &format!("/probe/pg?url={}&sql={}", urlencode(url), urlencode(sql)),
        None,
    )
    .await
}

#[tokio::test]
async fn strict_mode_traps_a_query_that_returns_no_rows() {
    let logs = Logs::capture().expect("the test's own log capture");
    let app = probe().await;
    let one = probe_query(&app, "SELECT 1").await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.json()["rows"], 1);

    let none = probe_query(&app, "SELECT 1 WHERE false").await;
    none.assert_problem(500, "zero rows under strict Spin compatibility");
    let logged = logs.text();
    assert!(
        logged.contains("SELECT 1 WHERE false") && logged.contains("spinframework/spin#3671"),
        "the trap names the statement and the Spin issue: {logged}"
    );
}

#[tokio::test]
async fn lenient_mode_returns_an_empty_result_and_warns() {
    let logs = Logs::capture().expect("the test's own log capture");
    let app = probe_opts(Options {
        pg_compat: PgCompat::Lenient,
        ..Options::default()
    })
    .await;
    let none = probe_query(&app, "SELECT 1 WHERE false").await;
    assert_eq!(none.status, 200, "{}", none.text);
    assert_eq!(none.json()["rows"], 0);
    assert!(
        logs.text().contains("would hang"),
        "a warning says what Spin 4.0.x would do: {}",
        logs.text()
    );
}

#[tokio::test]
async fn errors_raised_while_rows_stream_arrive_as_text_in_strict_mode() {
    // Division by zero fails in execution, after the statement is bound:
    // the point where Spin switches to the text form.
    let strict = probe().await;
    let r = probe_query(&strict, "SELECT 1 / (g - 2) FROM generate_series(1, 3) g").await;
    assert_eq!(r.status, 502, "{}", r.text);
    let body = r.json();
    assert_eq!(body["form"], "text", "{body}");
    let text = body["code"].as_str().unwrap();
    assert!(
        text.starts_with("Error::QueryFailed(QueryError::DbError(DbError {")
            && text.contains("code: \"22012\""),
        "Spin 4.0.x's text form: {text}"
    );

    // Errors before any row stays structured, as in Spin.
    let r = probe_query(&strict, "SELEC 1").await;
    assert_eq!(r.json()["form"], "db-error", "{}", r.text);
    assert_eq!(r.json()["code"], "42601", "{}", r.text);

    let lenient = probe_opts(Options {
        pg_compat: PgCompat::Lenient,
        ..Options::default()
    })
    .await;
    let r = probe_query(&lenient, "SELECT 1 / (g - 2) FROM generate_series(1, 3) g").await;
    assert_eq!(r.json()["form"], "db-error", "{}", r.text);
    assert_eq!(r.json()["code"], "22012", "{}", r.text);
}

fn header(echo: &Value, name: &str) -> String {
    echo["headers"][name]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn most_specific_route_wins() {
    let app = probe().await;
    let cases = [
        ("/probe/exact", "/probe/exact", ""),
        ("/probe/echo", "/probe/...", "/echo"),
        ("/probe/deeper/a/b", "/probe/deeper/...", "/a/b"),
        ("/elsewhere", "/...", "/elsewhere"),
    ];
    for (path, route, path_info) in cases {
        let r = app.get(path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let echo = r.json();
        assert_eq!(header(&echo, "spin-matched-route"), route, "{path}");
        assert_eq!(header(&echo, "spin-path-info"), path_info, "{path}");
    }
}

#[tokio::test]
async fn spin_headers_describe_the_request() {
    let app = probe().await;
    let r = app.get("/probe/echo?x=1", None).await;
    let echo = r.json();
    assert_eq!(
        header(&echo, "spin-full-url"),
        format!("{}/probe/echo?x=1", app.base)
    );
    assert_eq!(header(&echo, "spin-component-route"), "/probe");
    assert_eq!(header(&echo, "spin-raw-component-route"), "/probe/...");
    assert_eq!(header(&echo, "spin-base-path"), "/");
}

#[tokio::test]
async fn guest_sees_the_client_address() {
    let app = probe().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    stream
        .write_all(b"GET /probe/echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\nspin-client-addr: 6.6.6.6:1\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let body = raw.split("\r\n\r\n").nth(1).expect("a body");
    // The body may be chunked; find the JSON object inside.
    let json_start = body.find('{').unwrap();
    let json_end = body.rfind('}').unwrap();
    let echo: Value = serde_json::from_str(&body[json_start..=json_end]).unwrap();
    assert_eq!(
        header(&echo, "spin-client-addr"),
        local.to_string(),
        "not spoofable by the client"
    );
}

#[tokio::test]
async fn runaway_guest_is_cut_at_the_deadline_and_the_host_stays_up() {
    let app = probe_with(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let r = app.get("/probe/loop", None).await;
    r.assert_problem(500, "infinite loop");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cut long before the client gave up"
    );
    let next = app.get("/probe/echo", None).await;
    assert_eq!(next.status, 200, "the next request is served");
}

#[tokio::test]
async fn memory_hog_hits_the_instance_limit_and_the_host_stays_up() {
    let app = probe().await;
    let r = app.get("/probe/alloc", None).await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(app.get("/probe/echo", None).await.status, 200);
}

#[tokio::test]
async fn variables_render_templates_and_overrides() {
    let app = probe().await;
    let r = app.get("/probe/var?name=greeting", None).await;
    assert_eq!(r.json()["value"], "hello world");
    let r = app.get("/probe/var?name=secret", None).await;
    assert_eq!(r.json()["value"], "s3cret");
    let r = app.get("/probe/var?name=undeclared", None).await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[tokio::test]
async fn outbound_http_is_limited_to_allowed_hosts() {
    let app = probe().await;
    // A tiny upstream on 127.0.0.1, which the probe's manifest allows.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = upstream.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = upstream.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let allowed = format!("http://127.0.0.1:{port}/");
    let r = app
        .get(
            &format!("/probe/outbound?url={}", urlencode(&allowed)),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "allowed: {}", r.text);
    assert_eq!(r.json()["status"], 204);

    let denied = format!("http://localhost:{port}/");
    let r = app
        .get(&format!("/probe/outbound?url={}", urlencode(&denied)), None)
        .await;
    assert_eq!(r.status, 502, "denied: {}", r.text);
}

#[tokio::test]
async fn postgres_is_limited_to_allowed_hosts() {
    let app = probe().await;
    let ok = app
        .get(
            &format!(
                "/probe/pg?url={}",
                urlencode("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
            ),
            None,
        )
        .await;
    assert_eq!(ok.status, 200, "allowed: {}", ok.text);
    let denied = app
        .get(
            &format!(
                "/probe/pg?url={}",
                urlencode("postgres://postgres@localhost:5432/postgres?sslmode=disable")
            ),
            None,
        )
        .await;
    assert_eq!(denied.status, 502, "{}", denied.text);
    assert!(
        denied.text.contains("not allowed") || denied.text.contains("allowed_outbound_hosts"),
        "{}",
        denied.text
    );
}

const LOCAL_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

/// One instance holds at most 4 Postgres connections (the default cap):
/// the fifth open fails at once and names the limit, and the four go back
/// to the pool when the instance ends. Six requests in a row each get
/// their four, which the pool's 16 would not allow if they leaked.
#[tokio::test]
async fn an_instance_holds_a_bounded_number_of_postgres_connections() {
    let app = probe().await;
    for round in 0..6 {
        let r = app
            .get(
                &format!("/probe/pg?url={}&open=6", urlencode(LOCAL_PG)),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let body = r.json();
        assert_eq!(body["opened"], 4, "round {round}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("ConnectionFailed") && error.contains("limit"),
            "round {round}: {error}"
        );
    }
}

/// A Redis address that accepts connections and never answers holds up
/// only the requests that use it: opening the real server completes while
/// the silent one's connect is still pending, and the stuck request then
/// fails cleanly (502 from the probe, not a hung or crashed host).
#[tokio::test]
async fn a_silent_redis_does_not_hold_up_opens_of_another() {
    let app = probe().await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("redis://{}", silent.local_addr().unwrap());
    let stuck_path = format!("/probe/redis?url={}", urlencode(&silent_url));
    let stuck = app.get(&stuck_path, None);
    tokio::pin!(stuck);
    // The host has connected and waits for an answer that never comes.
    let held = tokio::select! {
        accepted = silent.accept() => accepted.unwrap().0,
        r = &mut stuck => panic!("answered before connecting: {}", r.text),
    };
    let real = format!("/probe/redis?url={}", urlencode("redis://127.0.0.1:6379"));
    let fine = tokio::select! {
        biased;
        r = &mut stuck => panic!("the silent server's request ended first: {}", r.text),
        r = app.get(&real, None) => r,
    };
    assert_eq!(fine.status, 200, "{}", fine.text);
    let r = stuck.await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert!(r.text.contains("timed out"), "{}", r.text);
    drop(held);
}

#[tokio::test]
async fn unknown_route_is_404_problem_json() {
    let app = TestApp::spawn().await;
    app.get("/definitely/not/here", None)
        .await
        .assert_problem(404, "no route");
}

/// Interfaces real Spin 3.x provides; anything else makes `spin up` refuse
/// the component.
fn spin_provides(import: &str) -> bool {
    const SPIN: &[&str] = &[
        "spin:postgres/postgres@4.0.0",
        "spin:postgres/postgres@3.0.0",
        "fermyon:spin/redis@2.0.0",
        "fermyon:spin/key-value@2.0.0",
        "fermyon:spin/variables@2.0.0",
        "fermyon:spin/postgres@2.0.0",
        "fermyon:spin/sqlite@2.0.0",
        "fermyon:spin/llm@2.0.0",
        "fermyon:spin/mqtt@2.0.0",
        "fermyon:spin/mysql@2.0.0",
        "fermyon:spin/rdbms-types@2.0.0",
    ];
    if SPIN.contains(&import) {
        return true;
    }
    // WASI 0.2.x: cli, clocks, filesystem, http, io, random, sockets.
    [
        "cli",
        "clocks",
        "filesystem",
        "http",
        "io",
        "random",
        "sockets",
    ]
    .iter()
    .any(|pkg| {
        import
            .strip_prefix(&format!("wasi:{pkg}/"))
            .and_then(|rest| rest.split_once("@0.2."))
            .is_some()
    })
}

#[test]
fn built_components_import_only_what_spin_provides() {
    let engine = wasmtime::Engine::default();
    let dir = root().join("target/wasm32-wasip2/wasm");
    // Every component of the application, and the test-only probe.
    let manifest = bridge::manifest::Manifest::load(&root().join("spin.toml")).unwrap();
    let mut names: Vec<String> = manifest.doc.component.keys().cloned().collect();
    names.push("probe".to_owned());
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        let path = dir.join(format!("{name}.wasm"));
        let component = wasmtime::component::Component::from_file(&engine, &path)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-functions)", path.display()));
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(&engine).map(|(n, _)| n.to_string()).collect();
        assert!(!imports.is_empty(), "{name} imports something");
        let foreign: Vec<&String> = imports.iter().filter(|i| !spin_provides(i)).collect();
        assert!(
            foreign.is_empty(),
            "{name} imports what Spin lacks: {foreign:?}"
        );
        let exports: Vec<String> = ty.exports(&engine).map(|(n, _)| n.to_string()).collect();
        assert!(
            exports
                .iter()
                .any(|e| e.starts_with("wasi:http/incoming-handler@0.2")),
            "{name} exports {exports:?}"
        );
    }
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Spin 4.0.0-4.0.2 hang on a raw `query` that returns no rows, so the
/// functions reach Postgres only through `kit::db`, whose connection has
/// no raw `query` (every row-returning statement is wrapped). The probe is
/// the host's test guest and may.
#[test]
fn functions_reach_postgres_only_through_kit_db() {
    let functions = root().join("functions");
    let kit_db = functions.join("kit/src/db");
    let mut offenders = Vec::new();
    for file in rust_files(&functions) {
        if file.starts_with(&kit_db) || file.starts_with(functions.join("probe")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        if text.contains("pg4") || text.contains("spin_sdk::pg") {
            offenders.push(file.display().to_string());
        }
    }
    assert!(
        offenders.is_empty(),
        "use kit::db instead of the raw Postgres interface: {offenders:?}"
    );
}

#[test]
fn the_import_rule_itself_rejects_foreign_interfaces() {
    assert!(spin_provides("wasi:http/types@0.2.6"));
    assert!(spin_provides("spin:postgres/postgres@4.0.0"));
    assert!(!spin_provides("spinmesh:custom/thing@1.0.0"));
    assert!(!spin_provides("wasi:http/types@0.3.0-rc-2026-01-06"));
    assert!(
        !spin_provides("wasi:keyvalue/store@0.2.0-draft2"),
        "not in the set we allow"
    );
}

/// What a guest prints reaches the bridge's stdout and stderr one line at
/// a time, each line prefixed with the component, the request id (the
/// client's `x-request-id`, or a fresh one) and the trace id (the client's
/// `traceparent`, or a trace the host starts); a line the guest leaves open
/// is ended when its instance goes. Run against the real binary, whose
/// streams are the ones an operator reads.
#[tokio::test]
async fn guest_output_lines_name_the_component_and_the_request() {
    use std::process::Stdio;

    use crate::common::process::Printed;
    use crate::common::subscriber::eventually;

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_bridge"))
        .current_dir(root())
        .args(["up", "--manifest", "bridge/tests/probe/spin.toml"])
        .args(["--listen", "127.0.0.1:0"])
        .args(["--broker", "none", "--no-migrate", "--admin-listen", "off"])
        .env("SPIN_VARIABLE_SECRET_TOKEN", "s3cret")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the bridge binary runs");
    let stdout = Printed::collect(child.stdout.take().unwrap());
    let stderr = Printed::collect(child.stderr.take().unwrap());

    let client = reqwest::Client::new();
    let base = stdout.after("Serving ").await;
    eventually("bridge up answers", Duration::from_secs(120), || async {
        client
            .get(format!("{base}/probe/print?text=hello"))
            .header("x-request-id", "req-42")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    for (stream, wanted) in [
        (
            &stdout,
            "[probe req-42 trace=4bf92f3577b34da6a3ce929d0e0e4736] hello on stdout",
        ),
        (
            &stderr,
            "[probe req-42 trace=4bf92f3577b34da6a3ce929d0e0e4736] hello on stderr, unended",
        ),
    ] {
        eventually(wanted, Duration::from_secs(10), || {
            std::future::ready(stream.lines().iter().any(|l| l == wanted))
        })
        .await;
    }

    let r = client
        .get(format!("{base}/probe/print?text=anonymous"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    eventually("a line with a fresh id", Duration::from_secs(10), || {
        std::future::ready(stdout.lines().iter().any(|l| {
            // A fresh request id, and the trace the host started.
            l.strip_prefix("[probe ")
                .and_then(|rest| rest.strip_suffix("] anonymous on stdout"))
                .and_then(|ids| ids.split_once(" trace="))
                .is_some_and(|(id, trace)| {
                    [id, trace]
                        .iter()
                        .all(|x| x.len() == 32 && x.bytes().all(|b| b.is_ascii_hexdigit()))
                })
        }))
    })
    .await;
    child.kill().await.unwrap();
}
