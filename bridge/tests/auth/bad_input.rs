//! Bad input never gets a 500 or a panic: each row names what it checks.

use serde_json::json;

use crate::common::{Reply, TestApp};

#[tokio::test]
async fn malformed_requests_get_clear_problems() {
    let app = TestApp::spawn().await;
    let two_mib = format!(
        "{{\"email\":\"a@b.co\",\"password\":\"{}\"}}",
        "x".repeat(2 << 20)
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("malformed JSON", b"{\"email\": ".to_vec(), 400),
        ("not an object", b"[1,2,3]".to_vec(), 400),
        ("empty body", Vec::new(), 400),
        (
            "email of the wrong type",
            json!({"email": 42, "password": "password123"})
                .to_string()
                .into(),
            422,
        ),
        (
            "password of the wrong type",
            json!({"email": "a@b.co", "password": ["x"]})
                .to_string()
                .into(),
            422,
        ),
        (
            "missing password",
            json!({"email": "a@b.co"}).to_string().into(),
            422,
        ),
        (
            "missing email",
            json!({"password": "password123"}).to_string().into(),
            422,
        ),
        (
            "invalid email",
            json!({"email": "no-at-sign", "password": "password123"})
                .to_string()
                .into(),
            422,
        ),
        (
            "short password",
            json!({"email": "a@b.co", "password": "short"})
                .to_string()
                .into(),
            422,
        ),
        ("2 MiB body", two_mib.into_bytes(), 413),
    ];
    for (what, body, status) in cases {
        let r = app.send("POST", "/auth/register", body, None).await;
        r.assert_problem(status, what);
    }
}

#[tokio::test]
async fn sql_looking_strings_are_stored_literally() {
    let app = TestApp::spawn().await;
    let username = "r0b'); DROP--";
    let r = app
        .register(
            "bobby'; DROP TABLE users;--@example.com",
            "password123",
            None,
        )
        .await;
    // Either rejected as an invalid email or stored as typed; never executed.
    assert!(r.status == 201 || r.status == 422, "{}", r.text);
    let r = app
        .register("tables@example.com", "x'); DELETE FROM users; --", None)
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let login = app
        .login("tables@example.com", "x'); DELETE FROM users; --")
        .await;
    assert_eq!(
        login.status, 200,
        "password with SQL round-trips: {}",
        login.text
    );
    let access = login.json()["access_token"].as_str().unwrap().to_string();
    let patch = app
        .send(
            "PATCH",
            "/auth/me",
            json!({"username": username}).to_string().into(),
            Some(&access),
        )
        .await;
    // Usernames are restricted to [A-Za-z0-9_.-]: rejected, not executed.
    patch.assert_problem(422, "SQL-looking username");
    assert_eq!(app.me(&access).await.status, 200, "users table still there");
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    let app = TestApp::spawn().await;
    app.get("/nope", None)
        .await
        .assert_problem(404, "no route at all");
    app.get("/auth/nope", None)
        .await
        .assert_problem(404, "unknown path under /auth");
    let r = app.get("/auth/register", None).await;
    r.assert_problem(405, "GET on a POST route");
    assert!(r.headers.get("allow").is_some(), "405 carries Allow");
    let r = app.send("DELETE", "/auth/me", Vec::new(), None).await;
    r.assert_problem(405, "DELETE /auth/me");
    assert_eq!(r.headers["allow"], "GET, HEAD, PATCH");
}

#[tokio::test]
async fn head_is_get_without_the_body() {
    let app = TestApp::spawn().await;
    let (_, login) = app.signed_in_user().await;
    let access = login["access_token"].as_str().unwrap();
    for (path, token, status) in [
        ("/auth/health", None, 200),
        ("/auth/me", Some(access), 200),
        ("/auth/me", None, 401),
        ("/openapi.json", None, 200),
    ] {
        let get = app.get(path, token).await;
        let mut head = app.client.head(app.url(path));
        if let Some(t) = token {
            head = head.bearer_auth(t);
        }
        let head = Reply::from(head.send().await.unwrap()).await;
        assert_eq!(head.status, status, "HEAD {path}");
        assert_eq!(get.status, status, "GET {path}");
        assert_eq!(head.content_type(), get.content_type(), "HEAD {path}");
        assert!(
            head.text.is_empty(),
            "HEAD {path} has no body: {}",
            head.text
        );
    }
    // A route without GET has no HEAD either.
    let r = app
        .client
        .head(app.url("/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
}
