//! A test-only component: each path exercises one thing the host must get
//! right (request metadata, time and memory limits, outbound HTTP and
//! Postgres allow-lists, variables, key-value). The bridge's integration
//! tests drive it; it is never deployed.
//!
//! Routed by the request path after `/probe`:
//!
//! | path        | behaviour                                              |
//! |-------------|--------------------------------------------------------|
//! | `/loop`     | spins forever; the host must interrupt it              |
//! | `/alloc`    | allocates 1 MiB chunks until allocation fails (traps)  |
//! | `/outbound` | GETs `?url=`; 200 `{status}` or 502 `{error}`          |
//! | `/pg`       | opens `?url=`, runs `?sql=` (default `SELECT 1`) through a |
//! |             | raw `query`; 200 `{rows}` or 502 `{error, form, code}` |
//! |             | with `?open=N`, opens N connections and holds them all; |
//! |             | 200 `{opened, error}` (the first refusal)              |
//! | `/redis`    | opens `?url=` and GETs a key; 200 `{ok}` or 502 `{error}` |
//! | `/print`    | writes `?text=` to stdout and stderr (the stderr line  |
//! |             | left open: the host ends it); 200                      |
//! | `/var`      | reads variable `?name=`; 200 `{value}` or 404 `{error}`|
//! | `/kv`       | stores the body under `k` in store `default`, echoes it|
//! | `/events`   | an event subscriber whose answer the event's data picks|
//! | anything else (`/echo`, `/probe/exact`) | echoes the request as JSON |

use std::collections::BTreeMap;

use serde_json::{Value, json};
use spin_sdk::http::{Request, Response};
use spin_sdk::{http_component, key_value, pg4, variables};

/// Size of each chunk `/alloc` grabs.
const CHUNK_BYTES: usize = 1024 * 1024;

#[http_component]
async fn handle_probe(req: Request) -> Response {
    let path = req.path().to_owned();
    match path.strip_prefix("/probe").unwrap_or(&path) {
        "/loop" => spin_forever(),
        "/alloc" => allocate_until_failure(),
        "/outbound" => outbound(&req).await,
        "/pg" if query_param(&req, "open").is_some() => hold_connections(&req),
        "/pg" => postgres(&req),
        "/redis" => redis(&req),
        "/print" => print(&req),
        "/var" => variable(&req),
        "/kv" => key_value_round_trip(&req),
        "/events" => subscriber(&req),
        _ => echo(&req),
    }
}

/// 200 with the method, URI, path info and every header.
fn echo(req: &Request) -> Response {
    let headers: BTreeMap<&str, String> = req
        .headers()
        .map(|(name, value)| (name, String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let path_info = req
        .header("spin-path-info")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    respond(
        200,
        &json!({
            "method": req.method().to_string(),
            "uri": req.uri(),
            "path_info": path_info,
            "headers": headers,
        }),
    )
}

/// Never returns and never allocates: only an epoch/fuel limit stops it.
fn spin_forever() -> ! {
    let mut counter = 0u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Keeps every chunk alive and written to, so the memory is really used;
/// the failing allocation aborts the instance.
fn allocate_until_failure() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        chunks.push(vec![0xA5; CHUNK_BYTES]);
        std::hint::black_box(&chunks);
    }
}

async fn outbound(req: &Request) -> Response {
    let Some(url) = query_param(req, "url") else {
        return respond(400, &json!({ "error": "missing ?url=" }));
    };
    let request = Request::get(url).build();
    match spin_sdk::http::send::<_, Response>(request).await {
        Ok(response) => respond(200, &json!({ "status": *response.status() })),
        Err(err) => respond(502, &json!({ "error": err.to_string() })),
    }
}

/// Opens `?open=N` connections to `?url=` and keeps every one open until
/// the answer: how many opened, and why the first refused one was.
fn hold_connections(req: &Request) -> Response {
    let (Some(url), Some(n)) = (
        query_param(req, "url"),
        query_param(req, "open").and_then(|n| n.parse::<usize>().ok()),
    ) else {
        return respond(400, &json!({ "error": "need ?url= and a number ?open=" }));
    };
    let mut held = Vec::new();
    let mut error = None;
    for _ in 0..n {
        match pg4::Connection::open(&url) {
            Ok(conn) => held.push(conn),
            Err(err) => {
                error = Some(format!("{err:?}"));
                break;
            }
        }
    }
    respond(200, &json!({ "opened": held.len(), "error": error }))
}

fn redis(req: &Request) -> Response {
    let Some(url) = query_param(req, "url") else {
        return respond(400, &json!({ "error": "missing ?url=" }));
    };
    match spin_sdk::redis::Connection::open(&url).and_then(|c| c.get("probe")) {
        Ok(_) => respond(200, &json!({ "ok": true })),
        Err(err) => respond(502, &json!({ "error": format!("{err:?}") })),
    }
}

/// Output the host must label with the component and request id.
fn print(req: &Request) -> Response {
    let text = query_param(req, "text").unwrap_or_default();
    println!("{text} on stdout");
    eprint!("{text} on stderr, unended");
    respond(200, &json!({ "printed": text }))
}

fn postgres(req: &Request) -> Response {
    let Some(url) = query_param(req, "url") else {
        return respond(400, &json!({ "error": "missing ?url=" }));
    };
    let sql = query_param(req, "sql").unwrap_or_else(|| "SELECT 1".to_owned());
    let result = match pg4::Connection::open(&url) {
        Ok(conn) => conn.query(&sql, &[]),
        Err(err) => Err(err),
    };
    match result {
        Ok(set) => respond(200, &json!({ "ok": true, "rows": set.rows.len() })),
        Err(err) => {
            // Which form the host reported the error in, for the tests of
            // the host's Spin-compatible error reporting.
            let (form, code) = match &err {
                pg4::PgError::QueryFailed(pg4::QueryError::Text(t)) => ("text", t.clone()),
                pg4::PgError::QueryFailed(pg4::QueryError::DbError(db)) => {
                    ("db-error", db.code.clone())
                }
                pg4::PgError::ConnectionFailed(t) => ("connection-failed", t.clone()),
                _ => ("other", String::new()),
            };
            respond(
                502,
                &json!({ "error": format!("{err:?}"), "form": form, "code": code }),
            )
        }
    }
}

/// A controllable event subscriber for the dispatcher's tests. Every
/// attempt is recorded in `probe_attempts` (which the test creates) with
/// its outcome; `data.behavior` picks the answer: `fail-twice` (503 on the
/// first two attempts), `fail-always` (503), `reject` (400),
/// `reject-until-fixed` (400 until the test writes a row to `probe_fixes`),
/// `slow` (sleeps 50 ms), else 200.
fn subscriber(req: &Request) -> Response {
    let header = |name: &str| {
        req.header(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    let (id, subject) = (header("ce-id"), header("ce-subject"));
    let signed = !header("spinmesh-signature").is_empty();
    let data: Value = serde_json::from_slice(req.body()).unwrap_or(Value::Null);
    let behavior = data["behavior"].as_str().unwrap_or("ok").to_owned();
    let seq = data["seq"].as_i64().unwrap_or(-1);
    let result = variables::get("database_url")
        .map_err(|e| format!("{e:?}"))
        .and_then(|url| pg4::Connection::open(&url).map_err(|e| format!("{e:?}")))
        .and_then(|conn| {
            let prior = conn
                .query(
                    "SELECT count(*) FROM probe_attempts WHERE event_id = $1::text::uuid",
                    &[pg4::ParameterValue::Str(id.clone())],
                )
                .map_err(|e| format!("{e:?}"))?;
            let prior = match prior.rows.first().and_then(|r| r.first()) {
                Some(pg4::DbValue::Int64(n)) => *n,
                _ => 0,
            };
            let fixed = || -> Result<bool, String> {
                let rows = conn
                    .query("SELECT count(*) FROM probe_fixes", &[])
                    .map_err(|e| format!("{e:?}"))?;
                Ok(matches!(rows.rows.first().and_then(|r| r.first()), Some(pg4::DbValue::Int64(n)) if *n > 0))
            };
            let outcome = match behavior.as_str() {
                "reject-until-fixed" if !fixed()? => "rejected",
                "fail-twice" if prior < 2 => "failed",
                "fail-always" => "failed",
                "reject" => "rejected",
                "slow" => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    "delivered"
                }
                _ => "delivered",
            };
            conn.execute(
                "INSERT INTO probe_attempts (event_id, subject, seq, outcome, signed)
                 VALUES ($1::text::uuid, $2, $3, $4, $5)",
                &[
                    pg4::ParameterValue::Str(id.clone()),
                    pg4::ParameterValue::Str(subject.clone()),
                    pg4::ParameterValue::Int64(seq),
                    pg4::ParameterValue::Str(outcome.to_owned()),
                    pg4::ParameterValue::Boolean(signed),
                ],
            )
            .map_err(|e| format!("{e:?}"))?;
            Ok(outcome)
        });
    match result {
        Ok("failed") => respond(503, &json!({ "error": "failing on purpose" })),
        Ok("rejected") => respond(400, &json!({ "error": "rejected on purpose" })),
        Ok(_) => respond(200, &json!({ "status": "delivered" })),
        Err(err) => respond(500, &json!({ "error": err })),
    }
}

fn variable(req: &Request) -> Response {
    let name = query_param(req, "name").unwrap_or_default();
    match variables::get(&name) {
        Ok(value) => respond(200, &json!({ "value": value })),
        Err(err) => respond(404, &json!({ "error": format!("{err:?}") })),
    }
}

fn key_value_round_trip(req: &Request) -> Response {
    let result = key_value::Store::open_default().and_then(|store| {
        store.set("k", req.body())?;
        store.get("k")
    });
    match result {
        Ok(value) => Response::builder()
            .status(200)
            .header("content-type", "application/octet-stream")
            .body(value.unwrap_or_default())
            .build(),
        Err(err) => respond(500, &json!({ "error": format!("{err:?}") })),
    }
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    form_urlencoded::parse(req.query().as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn respond(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}
