//! Notifications over every channel against real parts: the compiled
//! notifications and auth components in the embedded host, Postgres, an
//! aiosmtpd SMTP server per test ([`crate::common::smtp`]) and an HTTP
//! receiver standing in for an SMS gateway ([`gateway`]).
//!
//! - [`channels`]: `POST /notify` over `log`, `webhook`, `email` and `sms`,
//!   with and without the bridge's sinks configured.
//! - [`outages`]: the SMTP server away, refusing, deferring; the SMS
//!   gateway failing then answering.
//! - [`account`]: the auth function's account events become emails with
//!   their links.
//! - [`bad_input`]: every new field's bad values.
//! - [`log_fallback`]: `bridge up` without an SMTP server prints the
//!   emails, links included, to its log.
//! - [`tls`]: STARTTLS with a login, and implicit TLS, to a server whose
//!   certificate is verified.

mod account;
mod bad_input;
mod bridge_up;
mod channels;
mod gateway;
mod log_fallback;
mod outages;
mod tls;

use std::collections::BTreeMap;
use std::time::Duration;

use bridge::events::dispatch::DispatchConfig;
use serde_json::{Value, json};
use tokio_postgres::Client;

use crate::common::subscriber::{eventually, fast};
use crate::common::{Options, Reply, TestApp};

/// Retries quick enough for tests, slow enough that an outage of a few
/// seconds does not exhaust the sinks' 12 attempts (they span 7 to 15 s).
fn retries() -> DispatchConfig {
    DispatchConfig {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        ..fast()
    }
}

/// The application with its event path on, `vars` on top of the suite's.
async fn app_with(vars: BTreeMap<String, String>, events: DispatchConfig) -> TestApp {
    TestApp::spawn_with(Options {
        extra_vars: vars,
        events: Some(events),
        ..Options::default()
    })
    .await
}

/// A registered, signed-in user.
struct User {
    id: String,
    email: String,
    token: String,
}

async fn user(app: &TestApp) -> User {
    let (email, tokens) = app.signed_in_user().await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let me = app.me(&token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    User {
        id: me.json()["id"].as_str().unwrap().to_owned(),
        email,
        token,
    }
}

async fn notify(app: &TestApp, body: Value) -> Reply {
    app.post_json("/notify", &body, None).await
}

/// The caller's notification `id` as `GET /notifications` shows it.
async fn listed(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app.get("/notifications", Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("notification {id} not listed: {}", r.text))
}

/// Waits until `GET /notifications` shows notification `id` as `status`.
async fn wait_listed(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    eventually(
        &format!("notification {id} {status}"),
        Duration::from_secs(60),
        || async { listed(app, token, id).await["status"] == status },
    )
    .await;
    listed(app, token, id).await
}

/// Waits until notification `id` has `status` in the table.
async fn wait_status(db: &Client, id: &str, status: &str) {
    eventually(
        &format!("notification {id} {status}"),
        Duration::from_secs(60),
        || async { status_of(db, id).await.0 == status },
    )
    .await;
}

/// A notification's status and error.
async fn status_of(db: &Client, id: &str) -> (String, Option<String>) {
    let row = db
        .query_one(
            "SELECT status, error FROM notifications WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// The data of every outbox event of type `ty`, oldest first.
async fn events_of(db: &Client, ty: &str) -> Vec<Value> {
    db.query(
        "SELECT data FROM outbox WHERE type = $1 ORDER BY position",
        &[&ty],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The data of the outbox events of type `ty` about notification `id`.
async fn events_about(db: &Client, ty: &str, id: &str) -> Vec<Value> {
    events_of(db, ty)
        .await
        .into_iter()
        .filter(|d| d["notification_id"] == id)
        .collect()
}

/// An address no other test uses.
fn address(local: &str) -> String {
    format!("{local}-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// The body of a `POST /notify`.
fn body(user_id: &str, channel: &str, message: &str, to: Option<&str>) -> Value {
    let mut body = json!({"user_id": user_id, "channel": channel, "message": message});
    if let Some(to) = to {
        body["to"] = json!(to);
    }
    body
}
