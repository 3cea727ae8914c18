//! Bad input on every posts route: a clear problem+json answer with the
//! right status, and nothing written.

use serde_json::json;

use crate::common::posts::posts_app;

/// (method, path, body, token, expected status, why).
type Case<'a> = (&'a str, String, Vec<u8>, Option<&'a str>, u16, &'a str);

#[tokio::test]
async fn bad_input_on_every_route_is_refused_and_writes_nothing() {
    let app = posts_app().await;
    let ada = app.author("ada").await;
    let post = app.write_post(&ada.token, "Kept", &["keep"]).await;
    let id = post["id"].as_str().unwrap().to_owned();
    let token = Some(ada.token.as_str());
    let huge = vec![b'x'; 2 * 1024 * 1024];
    let long_title = "t".repeat(201);
    let long_body = "b".repeat(20_001);
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();

    let cases: Vec<Case> = vec![
        (
            "POST",
            "/posts".into(),
            json!({"title": "t", "body": "b"}).to_string().into(),
            None,
            401,
            "no token",
        ),
        (
            "POST",
            "/posts".into(),
            json!({"title": "t", "body": "b"}).to_string().into(),
            Some("not.a.jwt"),
            401,
            "forged token",
        ),
        (
            "POST",
            "/posts".into(),
            b"{\"title\":".to_vec(),
            token,
            400,
            "malformed JSON",
        ),
        (
            "POST",
            "/posts".into(),
            Vec::new(),
            token,
            400,
            "empty body",
        ),
        (
            "POST",
            "/posts".into(),
            b"[1,2]".to_vec(),
            token,
            400,
            "not an object",
        ),
        (
            "POST",
            "/posts".into(),
            huge.clone(),
            token,
            413,
            "huge body",
        ),
        (
            "POST",
            "/posts".into(),
            json!({"title": "", "body": "b"}).to_string().into(),
            token,
            422,
            "empty title",
        ),
        (
            "POST",
            "/posts".into(),
            json!({"title": long_title, "body": "b"}).to_string().into(),
            token,
            422,
            "title too long",
        ),
        (
            "POST",
            "/posts".into(),
            json!({"title": "t", "body": long_body}).to_string().into(),
            token,
            422,
            "body too long",
        ),
        (
            "POST",
            "/posts".into(),
            json!({"title": "t", "body": ""}).to_string().into(),
            token,
            422,
            "empty body text",
        ),
        (
            "POST",
            "/posts".into(),
            json!({"title": "t", "body": "b", "tags": eleven})
                .to_string()
                .into(),
            token,
            422,
            "eleven tags",
        ),
        (
            "POST",
            "/posts".into(),
            json!({"title": "t", "body": "b", "tags": ["x".repeat(33)]})
                .to_string()
                .into(),
            token,
            422,
            "tag too long",
        ),
        (
            "POST",
            "/posts".into(),
            json!({"title": "t", "body": "b", "tags": "rust"})
                .to_string()
                .into(),
            token,
            422,
            "tags not a list",
        ),
        (
            "POST",
            "/posts".into(),
            json!({"title": 5, "body": "b"}).to_string().into(),
            token,
            422,
            "title not text",
        ),
        (
            "POST",
            "/posts".into(),
            json!({"title": "t", "body": "b", "author_id": ada.id})
                .to_string()
                .into(),
            token,
            422,
            "unknown field",
        ),
        (
            "GET",
            "/posts?limit=0".into(),
            Vec::new(),
            None,
            422,
            "limit 0",
        ),
        (
            "GET",
            "/posts?limit=101".into(),
            Vec::new(),
            None,
            422,
            "limit 101",
        ),
        (
            "GET",
            "/posts?cursor=bogus".into(),
            Vec::new(),
            None,
            422,
            "forged cursor",
        ),
        (
            "GET",
            "/posts?author=a%20b".into(),
            Vec::new(),
            None,
            422,
            "author neither id nor name",
        ),
        (
            "GET",
            format!("/posts?tag={}", "x".repeat(40)),
            Vec::new(),
            None,
            422,
            "tag too long",
        ),
        (
            "GET",
            "/posts?sort=old".into(),
            Vec::new(),
            None,
            422,
            "unknown parameter",
        ),
        (
            "GET",
            "/posts/not-a-uuid".into(),
            Vec::new(),
            None,
            404,
            "id not a uuid",
        ),
        (
            "GET",
            format!("/posts/{}", uuid::Uuid::new_v4()),
            Vec::new(),
            None,
            404,
            "unknown post",
        ),
        (
            "PATCH",
            format!("/posts/{id}"),
            json!({}).to_string().into(),
            token,
            422,
            "empty patch",
        ),
        (
            "PATCH",
            format!("/posts/{id}"),
            json!({"titel": "x"}).to_string().into(),
            token,
            422,
            "misspelt field",
        ),
        (
            "PATCH",
            format!("/posts/{id}"),
            json!({"title": ""}).to_string().into(),
            token,
            422,
            "empty title",
        ),
        (
            "PATCH",
            format!("/posts/{id}"),
            json!({"tags": [1]}).to_string().into(),
            token,
            422,
            "tag not text",
        ),
        (
            "PATCH",
            format!("/posts/{id}"),
            b"nope".to_vec(),
            token,
            400,
            "malformed JSON",
        ),
        (
            "PATCH",
            format!("/posts/{id}"),
            huge,
            token,
            413,
            "huge body",
        ),
        (
            "PATCH",
            "/posts/not-a-uuid".into(),
            json!({"title": "x"}).to_string().into(),
            token,
            404,
            "id not a uuid",
        ),
        (
            "DELETE",
            "/posts/not-a-uuid".into(),
            Vec::new(),
            token,
            404,
            "id not a uuid",
        ),
        (
            "DELETE",
            format!("/posts/{id}"),
            Vec::new(),
            Some("a.b.c"),
            401,
            "forged token",
        ),
        (
            "PUT",
            format!("/posts/{id}"),
            Vec::new(),
            token,
            405,
            "wrong method",
        ),
        (
            "GET",
            "/posts/a/b".into(),
            Vec::new(),
            None,
            404,
            "unknown route",
        ),
        (
            "POST",
            "/posts/events".into(),
            json!({"user_id": ada.id}).to_string().into(),
            None,
            401,
            "unsigned delivery",
        ),
    ];
    for (method, path, body, token, status, why) in cases {
        let r = app.send(method, &path, body, token).await;
        r.assert_problem(status, &format!("{method} {path}: {why}"));
    }

    let after = app.post_of(&id).await;
    assert_eq!(after, post, "nothing changed the post");
    let db = app.db().await;
    let posts: i64 = db
        .query_one("SELECT count(*) FROM posts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(posts, 1, "nothing else was written");
}
