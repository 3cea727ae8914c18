//! The account lifecycle: verifying an e-mail address, resetting a
//! forgotten password, changing a password. Most tests take the mailed
//! tokens from the events that ask for the e-mails (see
//! `common::lifecycle`), which needs no event path; [`by_email`] runs the
//! flows end to end and reads the tokens from the emails a real SMTP
//! server receives.

mod bad_input;
mod by_email;
mod password_change;
mod password_reset;
mod verification;

use std::collections::BTreeMap;

use crate::common::{Options, Reply, TestApp};

/// Every account's first password.
const PASSWORD: &str = "correct horse battery";
/// The password it changes to.
const NEW_PASSWORD: &str = "staple horse battery";

/// The app with these variables set.
async fn app_with(vars: &[(&str, &str)]) -> TestApp {
    TestApp::spawn_with(Options {
        extra_vars: vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Options::default()
    })
    .await
}

/// A fresh address.
fn address() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// Registers `email` with [`PASSWORD`].
async fn register(app: &TestApp, email: &str) {
    let r = app.register(email, PASSWORD, None).await;
    assert_eq!(r.status, 201, "register: {}", r.text);
}

/// Logs `email` in with `password`; the token pair.
async fn log_in(app: &TestApp, email: &str, password: &str) -> (String, String) {
    let r = app.login(email, password).await;
    assert_eq!(r.status, 200, "login: {}", r.text);
    let pair = r.json();
    (
        pair["access_token"].as_str().unwrap().to_owned(),
        pair["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// Asserts a problem of this status and `type` slug.
fn assert_problem_type(r: &Reply, status: u16, slug: &str, context: &str) {
    r.assert_problem(status, context);
    assert_eq!(
        r.json()["type"],
        format!("https://spinmesh.dev/problems/{slug}"),
        "{context}"
    );
}

#[test]
fn bridge_keygen_prints_a_message_sealing_key() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bridge"))
        .arg("keygen")
        .output()
        .expect("the bridge binary runs");
    assert!(out.status.success(), "{}", crate::common::text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout
        .lines()
        .find_map(|line| line.strip_prefix("SPIN_VARIABLE_MESSAGE_SEALING_KEY="))
        .unwrap_or_else(|| panic!("no sealing key in {stdout}"));
    assert_eq!(key.len(), 64, "32 random bytes in hex: {key}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
}
