//! `POST /register` and `POST /login`, shaped like the older FastAPI service.

use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn seed_register_and_login_answer_bearer_tokens() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "seed@example.com", "password": "password123"});
    let r = app.post_json("/register", &body, None).await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    assert_eq!(r.json()["token_type"], "bearer");
    let r = app.post_json("/login", &body, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(r.json()["token_type"], "bearer");
    assert_eq!(
        app.me(&token).await.status,
        200,
        "seed token works on /auth/me"
    );
}

#[tokio::test]
async fn seed_routes_map_errors_like_the_old_service() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "dup@example.com", "password": "password123"});
    app.post_json("/register", &body, None).await;
    app.post_json("/register", &body, None)
        .await
        .assert_problem(400, "duplicate on seed route");
    app.post_json(
        "/login",
        &json!({"email": "dup@example.com", "password": "wrong-password"}),
        None,
    )
    .await
    .assert_problem(401, "bad credentials");
    app.post_json(
        "/register",
        &json!({"email": "not-an-email", "password": "password123"}),
        None,
    )
    .await
    .assert_problem(422, "invalid email");
}
