//! `bridge replay --subscription posts`, the command an operator runs:
//! in-process (loading the components itself) and over signed HTTP to a
//! running host (`--target`), plus its refusals.

use std::process::Output;

use crate::common::posts::{SECRET, posts_app, profiles};
use crate::common::{TestApp, database_url, root, text};

/// Runs `bridge replay <args>` against the app's database, without
/// blocking the runtime that serves the app (`--target` calls it).
async fn replay(app: &TestApp, args: &[&str], secret: Option<&str>) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bridge"));
    command
        .current_dir(root())
        .arg("replay")
        .args(args)
        .env("SPIN_VARIABLE_DATABASE_URL", database_url(&app.database))
        .env_remove("SPIN_VARIABLE_JWT_PRIVATE_KEY")
        .env_remove("SPIN_VARIABLE_JWT_PUBLIC_KEY")
        .env_remove("SPIN_VARIABLE_BRIDGE_SIGNING_SECRET");
    if let Some(secret) = secret {
        command.env("SPIN_VARIABLE_BRIDGE_SIGNING_SECRET", secret);
    }
    command.output().await.expect("the bridge binary runs")
}

#[tokio::test]
async fn replay_builds_profiles_in_process_and_through_a_running_host() {
    let app = posts_app().await;
    let db = app.db().await;
    // No event path runs in this test: only the replays move events.
    let ada = app.author("ada").await;
    let post = app.write_post(&ada.token, "Engines", &[]).await;
    let id = post["id"].as_str().unwrap();
    assert!(profiles(&db).await.is_empty());

    let out = replay(&app, &["--subscription", "posts"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Replayed posts: read "),
        "{}",
        text(&out)
    );
    let id_of_ada: uuid::Uuid = ada.id.parse().unwrap();
    assert_eq!(
        profiles(&db).await,
        [(id_of_ada, Some("ada".to_owned()), 1)]
    );

    app.rename(&ada.token, "countess").await;
    let target = app.base.clone();
    let out = replay(
        &app,
        &["--subscription", "posts", "--target", &target],
        Some(SECRET),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        profiles(&db).await,
        [(id_of_ada, Some("countess".to_owned()), 2)]
    );
    assert_eq!(app.post_of(id).await["author"]["username"], "countess");
}

#[tokio::test]
async fn replay_refuses_unknown_subscriptions_and_a_missing_secret() {
    let app = posts_app().await;
    let out = replay(&app, &["--subscription", "postz"], None).await;
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("no subscription \"postz\"") && said.contains("posts"),
        "{said}"
    );

    let out = replay(
        &app,
        &["--subscription", "posts", "--target", "http://127.0.0.1:9"],
        None,
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("SPIN_VARIABLE_BRIDGE_SIGNING_SECRET"),
        "{}",
        text(&out)
    );

    let out = replay(
        &app,
        &["--subscription", "posts", "--target", "not a url"],
        Some(SECRET),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("is not an absolute http(s) URL"),
        "{}",
        text(&out)
    );
}
