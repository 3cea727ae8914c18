//! `bridge spin-check` against `bridge up`: the compatibility scenario a
//! user runs against real `spin up` passes against the embedded host in
//! strict mode, and fails (non-zero exit) when a part of the system is
//! missing.

use std::time::Duration;

use crate::common::subscriber::fast;
use crate::common::{Options, TestApp};

const STEP_LIMIT: Duration = Duration::from_secs(5);

/// The application with its event path running (embedded broker).
async fn app_with_events() -> TestApp {
    TestApp::spawn_with(Options {
        events: Some(fast()),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn the_scenario_passes_against_bridge_up() {
    let app = app_with_events().await;
    let report = bridge::spin_check::run(&app.base, STEP_LIMIT).await;
    assert!(report.passed(), "spin-check:\n{report}");
    let names: Vec<&str> = report.steps.iter().map(|s| s.name).collect();
    for step in [
        "register the same email again (409)",
        "log in as an unknown user (401)",
        "reuse revoked the family (401)",
        "metrics of an unknown user (empty)",
        "events reach analytics (register, login)",
        "the welcome notification arrives",
    ] {
        assert!(names.contains(&step), "step {step:?} ran: {names:?}");
    }
}

#[tokio::test]
async fn the_command_exits_zero_on_success_and_prints_each_step() {
    let app = app_with_events().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(["spin-check", &app.base])
        .output()
        .await
        .expect("the bridge binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}:\n{stdout}", out.status);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(
        stdout.lines().filter(|l| l.starts_with("ok")).count() >= 10,
        "{stdout}"
    );
}

#[tokio::test]
async fn without_the_event_path_the_event_steps_fail_and_the_exit_is_non_zero() {
    // HTTP only: nothing relays events, so analytics and the welcome never
    // see the registration.
    let app = TestApp::spawn().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(["spin-check", &app.base, "--step-limit-secs", "1"])
        .output()
        .await
        .expect("the bridge binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 2, "only the two event steps fail: {stdout}");
    assert!(failed.iter().all(|l| l.contains("not within")), "{stdout}");
}

#[tokio::test]
async fn an_unreachable_deployment_fails_the_first_step() {
    let port = crate::common::process::free_port();
    let report = bridge::spin_check::run(&format!("http://127.0.0.1:{port}"), STEP_LIMIT).await;
    assert!(!report.passed());
    assert_eq!(report.steps.len(), 1, "{report}");
    assert!(report.steps[0].status.is_none(), "{report}");
}
