//! The posts service's helpers and its event scenario, run by the
//! embedded and Kafka suites: author profiles kept from user events,
//! renames, redelivered and reordered events, and `bridge replay`
//! rebuilding a wiped projection.

use std::collections::BTreeMap;
use std::time::Duration;

use bridge::events::event::{OutboxEvent, Signer};
use bridge::events::invoke::Invoker;
use bridge::events::replay::ReplayReport;
use bridge::manifest::Manifest;
use serde_json::{Value, json};

use super::store::PASSWORD;
use super::subscriber::{count, eventually, fast};
use super::transport::Transport;
use super::{Options, TestApp, root};

/// The signing secret the posts tests share with the functions.
pub const SECRET: &str = "posts-secret";

/// The app with a known signing secret, events not yet moving.
pub async fn posts_app() -> TestApp {
    TestApp::spawn_with(Options {
        extra_vars: BTreeMap::from([("bridge_signing_secret".to_string(), SECRET.to_string())]),
        ..Options::default()
    })
    .await
}

/// An author: a fresh account named `username`, signed in.
pub struct Author {
    pub token: String,
    pub id: String,
    pub email: String,
}

impl TestApp {
    /// Registers `username` and signs in.
    pub async fn author(&self, username: &str) -> Author {
        let email = format!("{username}-{}@example.com", uuid::Uuid::new_v4().simple());
        let r = self.register(&email, PASSWORD, Some(username)).await;
        assert_eq!(r.status, 201, "register {username}: {}", r.text);
        let id = r.json()["id"].as_str().unwrap().to_owned();
        let login = self.login(&email, PASSWORD).await;
        assert_eq!(login.status, 200, "{}", login.text);
        let token = login.json()["access_token"].as_str().unwrap().to_owned();
        Author { token, id, email }
    }

    /// `POST /posts`, expecting 201; returns the post.
    pub async fn write_post(&self, token: &str, title: &str, tags: &[&str]) -> Value {
        let body = json!({"title": title, "body": format!("All about {title}."), "tags": tags});
        let r = self.post_json("/posts", &body, Some(token)).await;
        assert_eq!(r.status, 201, "write post: {}", r.text);
        r.json()
    }

    /// `GET /posts/{id}`, expecting 200.
    pub async fn post_of(&self, id: &str) -> Value {
        let r = self.get(&format!("/posts/{id}"), None).await;
        assert_eq!(r.status, 200, "get post: {}", r.text);
        r.json()
    }

    /// `PATCH /auth/me` with a new username, expecting 200.
    pub async fn rename(&self, token: &str, username: &str) {
        let r = self
            .send(
                "PATCH",
                "/auth/me",
                json!({"username": username}).to_string().into_bytes(),
                Some(token),
            )
            .await;
        assert_eq!(r.status, 200, "rename to {username}: {}", r.text);
    }

    /// Waits until post `id` shows its author as `username`.
    pub async fn shows_author(&self, id: &str, username: Option<&str>) {
        let what = format!("post {id} by {username:?}");
        eventually(&what, Duration::from_secs(30), || async {
            self.post_of(id).await["author"]["username"] == json!(username)
        })
        .await;
    }

    /// `bridge replay --subscription posts`, in-process, as the command
    /// runs it.
    pub async fn replay_posts(&self) -> ReplayReport {
        let host = self.running.as_ref().unwrap().host.clone();
        let manifest = Manifest::load(&root().join("spin.toml")).unwrap();
        let (subscriptions, signer) = bridge::app::event_wiring(&manifest, &host).unwrap();
        let posts = subscriptions
            .into_iter()
            .find(|s| s.name == "posts")
            .unwrap();
        bridge::events::replay::run(
            super::database(&self.database),
            posts,
            Invoker::Embedded(host),
            signer,
            fast(),
        )
        .await
        .expect("the replay runs")
    }
}

/// The outbox's user events about `user`, oldest first.
async fn user_events(db: &tokio_postgres::Client, user: &str) -> Vec<OutboxEvent> {
    db.query(
        "SELECT position, txid::text, id, source, type, subject, aggregate,
                to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                dataschema, data::text, traceparent
           FROM outbox WHERE subject = $1 AND type IN ('user.registered', 'user.updated')
          ORDER BY txid, position",
        &[&user],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| OutboxEvent {
        position: r.get(0),
        txid: r.get(1),
        id: r.get(2),
        source: r.get(3),
        event_type: r.get(4),
        subject: r.get(5),
        aggregate: r.get(6),
        time: r.get(7),
        dataschema: r.get(8),
        data: r.get(9),
        traceparent: r.get(10),
    })
    .collect()
}

/// Register → post → the list shows the name; rename → the post shows the
/// new name; events redelivered and older ones delivered after newer ones
/// change nothing; a wiped profile table comes back whole from `bridge
/// replay`, while the transport keeps running.
pub async fn posts_follow_user_events(transport: Transport) {
    let app = posts_app().await;
    let db = app.db().await;
    let host = app.running.as_ref().unwrap().host.clone();
    let _runner = transport.start(
        &app,
        &root().join("spin.toml"),
        Invoker::Embedded(host.clone()),
        None,
        fast(),
    );

    let ada = app.author("ada").await;
    let post = app.write_post(&ada.token, "Engines", &["math"]).await;
    let id = post["id"].as_str().unwrap().to_owned();
    assert_eq!(post["author"]["id"], ada.id.as_str(), "{post}");
    eventually(
        "the list shows ada's name",
        Duration::from_secs(30),
        || async {
            let list = app.get("/posts", None).await.json();
            list["items"][0]["id"] == id.as_str() && list["items"][0]["author"]["username"] == "ada"
        },
    )
    .await;

    app.rename(&ada.token, "ada_l").await;
    app.shows_author(&id, Some("ada_l")).await;
    app.rename(&ada.token, "countess").await;
    app.shows_author(&id, Some("countess")).await;

    // Another author, with no posts: their profile must come back too.
    let grace = app.author("grace").await;
    app.rename(&grace.token, "amazing_grace").await;
    eventually("grace's profile", Duration::from_secs(30), || async {
        count(
            &db,
            &format!(
                "SELECT count(*) FROM post_authors WHERE user_id = '{}' AND username = 'amazing_grace'",
                grace.id
            ),
        )
        .await
            == 1
    })
    .await;

    // Older events after newer ones, each twice: nothing rolls back.
    let events = user_events(&db, &ada.id).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["user.registered", "user.updated", "user.updated"]);
    let signer = Signer::new(SECRET);
    let invoker = Invoker::Embedded(host.clone());
    for event in [&events[1], &events[0], &events[1], &events[2]] {
        let attempt = invoker
            .deliver("/posts/events", event, &signer, Duration::from_secs(10))
            .await;
        assert_eq!(attempt.status, Some(200), "{attempt:?}");
    }
    assert_eq!(app.post_of(&id).await["author"]["username"], "countess");

    // Every event again, from the outbox, while the transport runs.
    let report = app.replay_posts().await;
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    let user_events_total = count(
        &db,
        "SELECT count(*) FROM outbox WHERE type IN ('user.registered', 'user.updated')",
    )
    .await;
    assert_eq!(report.wanted as i64, user_events_total, "{report:?}");
    assert_eq!(app.post_of(&id).await["author"]["username"], "countess");

    // A wiped projection: names disappear, and the replay brings every
    // profile back at its latest revision.
    let before: Vec<(uuid::Uuid, Option<String>, i64)> = profiles(&db).await;
    assert_eq!(before.len(), 2, "{before:?}");
    db.execute("TRUNCATE post_authors", &[]).await.unwrap();
    assert_eq!(app.post_of(&id).await["author"]["username"], Value::Null);
    let report = app.replay_posts().await;
    assert_eq!(report.dead_lettered, 0, "{report:?}");
    assert_eq!(profiles(&db).await, before);
    assert_eq!(app.post_of(&id).await["author"]["username"], "countess");
}

/// Every stored profile, by user id.
pub async fn profiles(db: &tokio_postgres::Client) -> Vec<(uuid::Uuid, Option<String>, i64)> {
    db.query(
        "SELECT user_id, username, revision FROM post_authors ORDER BY user_id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}
