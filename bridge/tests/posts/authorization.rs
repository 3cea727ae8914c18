//! Who may change a post: its author or an admin; anyone else gets 403
//! (posts are public, so not 404), and nobody without a token.

use serde_json::json;

use crate::common::TestApp;
use crate::common::posts::posts_app;

async fn patch(app: &TestApp, id: &str, token: Option<&str>) -> crate::common::Reply {
    app.send(
        "PATCH",
        &format!("/posts/{id}"),
        json!({"title": "Changed"}).to_string().into_bytes(),
        token,
    )
    .await
}

async fn delete(app: &TestApp, id: &str, token: Option<&str>) -> crate::common::Reply {
    app.send("DELETE", &format!("/posts/{id}"), Vec::new(), token)
        .await
}

#[tokio::test]
async fn the_author_edits_and_deletes_their_post() {
    let app = posts_app().await;
    let ada = app.author("ada").await;
    let post = app.write_post(&ada.token, "Engines", &["math"]).await;
    let id = post["id"].as_str().unwrap();

    let r = app
        .send(
            "PATCH",
            &format!("/posts/{id}"),
            json!({"title": "Analytical engines", "tags": ["Math", "history"]})
                .to_string()
                .into_bytes(),
            Some(&ada.token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let changed = r.json();
    assert_eq!(changed["title"], "Analytical engines");
    assert_eq!(changed["tags"], json!(["math", "history"]));
    assert_eq!(changed["body"], post["body"], "untouched fields stay");
    assert!(changed["updated_at"].as_str() > post["updated_at"].as_str());

    let db = app.db().await;
    let events: Vec<serde_json::Value> = db
        .query(
            "SELECT data FROM outbox WHERE subject = $1 ORDER BY position",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[1]["changes"],
        json!({"title": "Analytical engines", "tags": ["math", "history"]})
    );

    let r = delete(&app, id, Some(&ada.token)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.get(&format!("/posts/{id}"), None)
        .await
        .assert_problem(404, "a deleted post");
    delete(&app, id, Some(&ada.token))
        .await
        .assert_problem(404, "deleting twice");
    let types: Vec<String> = db
        .query(
            "SELECT type FROM outbox WHERE subject = $1 ORDER BY position",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(types, ["post.created", "post.updated", "post.deleted"]);
}

#[tokio::test]
async fn another_user_gets_403_and_an_admin_may_edit_and_delete() {
    let app = posts_app().await;
    let ada = app.author("ada").await;
    let eve = app.author("eve").await;
    let post = app.write_post(&ada.token, "Engines", &[]).await;
    let id = post["id"].as_str().unwrap();

    patch(&app, id, Some(&eve.token))
        .await
        .assert_problem(403, "another user's patch");
    delete(&app, id, Some(&eve.token))
        .await
        .assert_problem(403, "another user's delete");
    patch(&app, id, None)
        .await
        .assert_problem(401, "a patch without a token");
    delete(&app, id, None)
        .await
        .assert_problem(401, "a delete without a token");
    assert_eq!(app.post_of(id).await["title"], "Engines", "nothing changed");

    let admin = app.admin_token().await;
    let r = patch(&app, id, Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["title"], "Changed");
    assert_eq!(
        r.json()["author"]["id"],
        ada.id.as_str(),
        "an admin's edit keeps the author"
    );
    let r = delete(&app, id, Some(&admin)).await;
    assert_eq!(r.status, 204, "{}", r.text);

    let unknown = uuid::Uuid::new_v4();
    patch(&app, &unknown.to_string(), Some(&admin))
        .await
        .assert_problem(404, "an unknown post");
}

#[tokio::test]
async fn a_patch_changing_nothing_emits_no_event() {
    let app = posts_app().await;
    let ada = app.author("ada").await;
    let post = app.write_post(&ada.token, "Same", &["a"]).await;
    let id = post["id"].as_str().unwrap();
    let r = app
        .send(
            "PATCH",
            &format!("/posts/{id}"),
            json!({"title": "Same", "tags": ["A"]})
                .to_string()
                .into_bytes(),
            Some(&ada.token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let db = app.db().await;
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM outbox WHERE subject = $1 AND type = 'post.updated'",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}
