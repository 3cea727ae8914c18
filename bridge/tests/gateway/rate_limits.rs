//! Rate limits at the edge: per client address, counted in the shared
//! Redis, announced in the httpapi draft's headers, stricter for logins.
//!
//! Every test's requests come from 127.0.0.1, so these apps trust one proxy
//! hop and each test speaks for its own made-up client addresses in
//! `X-Forwarded-For`: the counters they spend are theirs alone. Windows are
//! aligned to the epoch, so the tests that count to a limit use day-long
//! windows: a window ending mid-test would start the count again.

use std::collections::BTreeMap;
use std::time::Duration;

use bridge::keys::JwtKeys;
use serde_json::{Value, json};

use crate::common::process::Bridge;
use crate::common::subscriber::eventually;
use crate::common::{Options, Reply, TestApp, drop_database_blocking};

/// A window no test outlives.
const DAY: &str = "86400";

/// An address no other test (or run within the window) uses.
fn fresh_address() -> String {
    let id = uuid::Uuid::new_v4();
    let b = id.as_bytes();
    format!(
        "2001:db8:{:x}:{:x}::{:x}",
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]])
    )
}

/// An app behind one trusted proxy, with `vars` on top.
async fn app_with(vars: &[(&str, &str)]) -> TestApp {
    let mut extra_vars =
        BTreeMap::from([("rate_limit_trusted_proxies".to_string(), "1".to_string())]);
    for (name, value) in vars {
        extra_vars.insert((*name).to_string(), (*value).to_string());
    }
    TestApp::spawn_with(Options {
        extra_vars,
        ..Options::default()
    })
    .await
}

async fn send_from(
    client: &reqwest::Client,
    base: &str,
    address: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    let mut req = client
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .header("x-forwarded-for", address);
    if let Some(body) = body {
        req = req.json(body);
    }
    Reply::from(req.send().await.expect("request sent")).await
}

fn header<'r>(reply: &'r Reply, name: &str) -> &'r str {
    reply
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header: {:?}", reply.headers))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_101st_request_in_the_window_is_refused_and_other_addresses_pass() {
    let app = app_with(&[
        ("rate_limit_requests", "100"),
        ("rate_limit_window_seconds", DAY),
    ])
    .await;
    let client = &app.client;
    let address = fresh_address();
    for n in 1..=100u32 {
        // Spread over components and answers: every route counts, a 404
        // as much as a 200.
        let path = match n % 3 {
            0 => "/auth/health",
            1 => "/products",
            _ => "/products/no/such/route",
        };
        let r = send_from(client, &app.base, &address, "GET", path, None).await;
        assert_ne!(r.status, 429, "request {n} of 100 to {path}: {}", r.text);
        assert_eq!(header(&r, "ratelimit-policy"), "\"address\";q=100;w=86400");
        let state = header(&r, "ratelimit");
        assert!(
            state.starts_with(&format!("\"address\";r={};t=", 100 - n)),
            "request {n}: {state}"
        );
    }
    let refused = send_from(client, &app.base, &address, "GET", "/auth/health", None).await;
    refused.assert_problem(429, "the 101st request");
    assert_eq!(
        refused.json()["type"],
        "https://spinmesh.dev/problems/rate-limited"
    );
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!(
        (1..=86400).contains(&retry_after),
        "retry-after {retry_after}"
    );
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        "\"address\";q=100;w=86400"
    );
    assert!(header(&refused, "ratelimit").starts_with("\"address\";r=0;t="));
    // Writes are refused before they do anything.
    let write = send_from(
        client,
        &app.base,
        &address,
        "POST",
        "/auth/register",
        Some(&json!({"email": "limited@example.com", "password": "correct horse battery"})),
    )
    .await;
    write.assert_problem(429, "a write over the limit");
    let db = app.db().await;
    let users: i64 = db
        .query_one(
            "SELECT count(*) FROM users WHERE email = 'limited@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0, "the refused registration wrote nothing");

    let other = send_from(
        client,
        &app.base,
        &fresh_address(),
        "GET",
        "/auth/health",
        None,
    )
    .await;
    assert_eq!(other.status, 200, "another address has its own quota");
    assert!(header(&other, "ratelimit").starts_with("\"address\";r=99;t="));
}

#[tokio::test]
async fn the_window_resets() {
    let app = app_with(&[
        ("rate_limit_requests", "3"),
        ("rate_limit_window_seconds", "1"),
    ])
    .await;
    let address = fresh_address();
    let get = || {
        send_from(
            &app.client,
            &app.base,
            &address,
            "GET",
            "/auth/health",
            None,
        )
    };
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get().await.status);
    }
    // A window may end between two of the four requests; the limit is
    // what is checked, so look for a refusal within a burst.
    let mut refused = statuses.contains(&429);
    for _ in 0..20 {
        if refused {
            break;
        }
        refused = get().await.status == 429;
    }
    assert!(
        refused,
        "a burst over a quota of 3 is refused: {statuses:?}"
    );
    eventually("the window resets", Duration::from_secs(10), || async {
        get().await.status == 200
    })
    .await;
}

#[tokio::test]
async fn delivery_routes_are_not_limited() {
    let app = app_with(&[("rate_limit_requests", "1")]).await;
    let address = fresh_address();
    for _ in 0..3 {
        // Unsigned, so the handler refuses it (401), but never the limiter.
        let r = send_from(
            &app.client,
            &app.base,
            &address,
            "POST",
            "/orders/events",
            Some(&json!({})),
        )
        .await;
        assert_ne!(r.status, 429, "{}", r.text);
        assert!(r.headers.get("ratelimit").is_none(), "{:?}", r.headers);
    }
}

#[tokio::test]
async fn login_guessing_hits_the_stricter_limit_per_address_and_per_account() {
    let app = app_with(&[
        ("rate_limit_login_requests", "3"),
        ("rate_limit_window_seconds", DAY),
    ])
    .await;
    let email = format!("victim-{}@example.com", uuid::Uuid::new_v4().simple());
    let registered = send_from(
        &app.client,
        &app.base,
        &fresh_address(),
        "POST",
        "/auth/register",
        Some(&json!({"email": email, "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    let attacker = fresh_address();
    let guess = |address: String, email: String| {
        let app = &app;
        async move {
            send_from(
                &app.client,
                &app.base,
                &address,
                "POST",
                "/auth/login",
                Some(&json!({"email": email, "password": "wrong guess"})),
            )
            .await
        }
    };
    for n in 1..=3 {
        let r = guess(attacker.clone(), email.clone()).await;
        r.assert_problem(401, &format!("guess {n}"));
        assert!(header(&r, "ratelimit-policy").contains("\"login\";q=3;w=86400"));
    }
    guess(attacker.clone(), email.clone())
        .await
        .assert_problem(429, "the fourth guess from one address");
    // The same address on another account: the address's login quota is spent.
    guess(attacker.clone(), "someone-else@example.com".into())
        .await
        .assert_problem(429, "another account from the same address");
    // The account from a fresh address: the account's own quota is spent.
    let r = guess(fresh_address(), email.clone()).await;
    r.assert_problem(429, "the same account from another address");
    // The right password does not slip through either while the account is locked.
    let r = send_from(
        &app.client,
        &app.base,
        &fresh_address(),
        "POST",
        "/auth/login",
        Some(&json!({"email": email, "password": "correct horse battery"})),
    )
    .await;
    r.assert_problem(429, "the account's attempts are spent");
    // Other routes from the attacker's address are still served.
    let r = send_from(
        &app.client,
        &app.base,
        &attacker,
        "GET",
        "/auth/health",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn with_redis_down_reads_are_served_and_logins_refused_never_500() {
    // Redis refuses database 99999, so every connection the functions
    // open fails, as when the server is gone.
    let app = app_with(&[("redis_url", "redis://127.0.0.1:6379/99999")]).await;
    let address = fresh_address();
    let health = send_from(
        &app.client,
        &app.base,
        &address,
        "GET",
        "/auth/health",
        None,
    )
    .await;
    assert_eq!(health.status, 200, "fail open for reads: {}", health.text);
    assert!(
        health.headers.get("ratelimit").is_none(),
        "nothing was counted"
    );
    let products = send_from(&app.client, &app.base, &address, "GET", "/products", None).await;
    assert_eq!(products.status, 200, "{}", products.text);
    let registered = send_from(
        &app.client,
        &app.base,
        &address,
        "POST",
        "/auth/register",
        Some(&json!({"email": "open@example.com", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    for path in ["/auth/login", "/login"] {
        let r = send_from(
            &app.client,
            &app.base,
            &address,
            "POST",
            path,
            Some(&json!({"email": "open@example.com", "password": "correct horse battery"})),
        )
        .await;
        r.assert_problem(503, &format!("fail closed for {path}"));
        assert!(r.headers.get("retry-after").is_some());
    }
}

/// Two `bridge up` processes (each on its own database) sharing Redis
/// spend one quota per address.
#[tokio::test]
async fn the_limit_holds_across_two_bridge_processes() {
    let keys = JwtKeys::generate();
    let databases = [
        format!("spinmesh_test_{}", uuid::Uuid::new_v4().simple()),
        format!("spinmesh_test_{}", uuid::Uuid::new_v4().simple()),
    ];
    let env = [
        ("SPIN_VARIABLE_RATE_LIMIT_REQUESTS", "10"),
        ("SPIN_VARIABLE_RATE_LIMIT_TRUSTED_PROXIES", "1"),
        ("SPIN_VARIABLE_RATE_LIMIT_WINDOW_SECONDS", DAY),
    ];
    let first = Bridge::start(&databases[0], &keys, &env).await;
    let second = Bridge::start(&databases[1], &keys, &env).await;
    let client = reqwest::Client::new();
    let address = fresh_address();
    for n in 0..10 {
        let base = if n % 2 == 0 {
            &first.base
        } else {
            &second.base
        };
        let r = send_from(&client, base, &address, "GET", "/auth/health", None).await;
        assert_eq!(r.status, 200, "request {n}: {}", r.text);
    }
    for base in [&first.base, &second.base] {
        send_from(&client, base, &address, "GET", "/auth/health", None)
            .await
            .assert_problem(429, "the quota spent across both processes");
    }
    drop((first, second));
    for database in &databases {
        drop_database_blocking(database);
    }
}
