//! `bridge dead-letters list | show | redrive`, the commands an operator
//! runs, in every transport: a subscriber refuses an event (it is
//! dead-lettered), a redrive while it still refuses puts it back with its
//! attempts added, and once it is fixed a redrive applies it once and
//! leaves the dead letters empty.

use std::process::Output;
use std::time::Duration;

use serde_json::json;

use crate::common::subscriber::{count, emit, eventually, fast, probe_app};
use crate::common::transport::Transport;
use crate::common::{TestApp, database_url, root, text};

/// Runs `bridge dead-letters <args>` for the probe app in `transport`'s
/// store.
async fn dead_letters(app: &TestApp, transport: &Transport, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bridge"));
    command
        .current_dir(root())
        .arg("dead-letters")
        .args(args)
        .args(["-f", "bridge/tests/probe/spin.toml"])
        .args(transport.cli_args())
        .env("SPIN_VARIABLE_DATABASE_URL", database_url(&app.database))
        .env("SPIN_VARIABLE_SECRET_TOKEN", "s3cret")
        .env_remove("SPIN_VARIABLE_BRIDGE_SIGNING_SECRET");
    command.output().await.expect("the bridge binary runs")
}

/// The listing's line for `event`, once it is there.
async fn listed(app: &TestApp, transport: &Transport, event: &str) -> String {
    let mut last = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let out = dead_letters(app, transport, &["list"]).await;
        assert!(out.status.success(), "{}", text(&out));
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(line) = last.lines().find(|l| l.contains(event)) {
            return line.to_string();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{event} never listed: {last}");
}

async fn refused_then_fixed_then_redriven(transport: Transport) {
    let (app, db) = probe_app(None, Default::default()).await;
    let manifest = root().join("bridge/tests/probe/spin.toml");
    let invoker =
        bridge::events::invoke::Invoker::Embedded(app.running.as_ref().unwrap().host.clone());
    let runner = transport.start(&app, &manifest, invoker, None, fast());
    let bad = emit(
        &db,
        "a",
        "probe.step",
        json!({"seq": 1, "behavior": "reject-until-fixed"}),
    )
    .await
    .to_string();
    let good = emit(&db, "b", "probe.step", json!({"seq": 2})).await;
    let line = listed(&app, &transport, &bad).await;
    // Refused at once (a 400 is not retried): one attempt.
    assert!(line.contains("probe") && line.contains("400"), "{line}");
    let delivered = |id: String| {
        let db = &db;
        async move {
            db.query_one(
                "SELECT count(*) FROM probe_attempts WHERE event_id = $1::text::uuid AND outcome = 'delivered'",
                &[&id],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    eventually("the good event", Duration::from_secs(30), || async {
        delivered(good.to_string()).await == 1
    })
    .await;
    runner.stop().await;

    // `show` prints it in full.
    let out = dead_letters(&app, &transport, &["show", &bad]).await;
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("reject-until-fixed") && shown.contains("subscription  probe"),
        "{shown}"
    );

    // Still refused: back with its attempts added, and the command says so.
    let out = dead_letters(&app, &transport, &["redrive", "--id", &bad]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("1 failed again"), "{}", text(&out));
    let line = listed(&app, &transport, &bad).await;
    let attempts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(attempts[3], "2", "attempts added: {line}");

    // Fixed: applied once, and the dead letters are empty.
    db.execute("INSERT INTO probe_fixes VALUES (true)", &[])
        .await
        .unwrap();
    let out = dead_letters(
        &app,
        &transport,
        &["redrive", "--all", "--subscription", "probe"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("1 delivered and removed"),
        "{}",
        text(&out)
    );
    assert_eq!(delivered(bad.clone()).await, 1);
    let out = dead_letters(&app, &transport, &["list"]).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "no dead letters\n",
        "{}",
        text(&out)
    );
    // Nothing delivered twice.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM probe_attempts WHERE outcome = 'delivered'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn embedded_refused_fixed_redriven() {
    refused_then_fixed_then_redriven(Transport::Embedded).await;
}

#[tokio::test]
async fn amqp_refused_fixed_redriven() {
    refused_then_fixed_then_redriven(Transport::amqp()).await;
}

#[tokio::test]
async fn kafka_refused_fixed_redriven() {
    refused_then_fixed_then_redriven(Transport::kafka()).await;
}

#[tokio::test]
async fn unknown_subscriptions_and_missing_choices_are_refused() {
    let (app, _db) = probe_app(None, Default::default()).await;
    let out = dead_letters(
        &app,
        &Transport::Embedded,
        &["list", "--subscription", "nope"],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no subscription \"nope\""),
        "{}",
        text(&out)
    );
    let out = dead_letters(&app, &Transport::Embedded, &["redrive"]).await;
    assert!(!out.status.success(), "redrive needs --id or --all");
    let out = dead_letters(
        &app,
        &Transport::Embedded,
        &["show", "00000000-0000-0000-0000-000000000000"],
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out).contains("no dead letter"), "{}", text(&out));
}
