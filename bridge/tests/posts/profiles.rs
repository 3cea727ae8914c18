//! Author profiles before and without events: a post by a user whose
//! `user.registered` has not arrived still succeeds, and its name fills in
//! once the event lands; `user.updated` leaves auth in the statement that
//! renames.

use bridge::events::invoke::Invoker;
use serde_json::{Value, json};

use crate::common::posts::posts_app;
use crate::common::root;
use crate::common::subscriber::{count, fast};
use crate::common::transport::Transport;

#[tokio::test]
async fn a_post_before_the_profile_arrives_fills_in_later() {
    let app = posts_app().await;
    let ada = app.author("ada").await;
    let post = app.write_post(&ada.token, "Early", &[]).await;
    assert_eq!(
        post["author"],
        json!({"id": ada.id, "username": Value::Null})
    );
    let id = post["id"].as_str().unwrap().to_owned();

    let transport = Transport::Embedded;
    let _runner = transport.start(
        &app,
        &root().join("spin.toml"),
        Invoker::Embedded(app.running.as_ref().unwrap().host.clone()),
        None,
        fast(),
    );
    app.shows_author(&id, Some("ada")).await;
    let by_name = app.get("/posts?author=ADA", None).await.json();
    assert_eq!(by_name["items"][0]["id"], id.as_str(), "{by_name}");
}

#[tokio::test]
async fn a_rename_emits_user_updated_with_the_next_revision() {
    let app = posts_app().await;
    let ada = app.author("ada").await;
    app.rename(&ada.token, "ada_l").await;
    let db = app.db().await;
    let rows = db
        .query(
            "SELECT type, data FROM outbox WHERE subject = $1 ORDER BY position",
            &[&ada.id],
        )
        .await
        .unwrap();
    let events: Vec<(String, Value)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let registered = events.iter().find(|(t, _)| t == "user.registered").unwrap();
    assert_eq!(registered.1["revision"], 1, "{events:?}");
    let updated: Vec<&Value> = events
        .iter()
        .filter(|(t, _)| t == "user.updated")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        updated,
        [&json!({"version": 1, "user_id": ada.id, "username": "ada_l", "revision": 2})]
    );

    // A taken name changes nothing and announces nothing.
    let bob = app.author("bob").await;
    let r = app
        .send(
            "PATCH",
            "/auth/me",
            json!({"username": "ADA_L"}).to_string().into_bytes(),
            Some(&bob.token),
        )
        .await;
    r.assert_problem(409, "a taken username");
    let refused = count(
        &db,
        &format!(
            "SELECT count(*) FROM outbox WHERE subject = '{}' AND type = 'user.updated'",
            bob.id
        ),
    )
    .await;
    assert_eq!(refused, 0, "the refused rename announced nothing");
}
