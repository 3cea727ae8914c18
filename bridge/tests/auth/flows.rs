//! register → login → me → refresh → logout, and the rules around them.

use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn register_returns_201_with_the_user() {
    let app = TestApp::spawn().await;
    let r = app
        .register("Alice@Example.com", "long enough pw", Some("alice"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let user = r.json();
    assert_eq!(user["email"], "alice@example.com", "email is normalised");
    assert_eq!(user["username"], "alice");
    assert_eq!(user["role"], "user");
    assert!(
        user["id"]
            .as_str()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()),
        "{user}"
    );
    assert!(user["created_at"].is_string());
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
}

#[tokio::test]
async fn full_session_register_login_me_refresh_logout() {
    let app = TestApp::spawn().await;
    let (email, tokens) = app.signed_in_user().await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let me = app.me(access).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["email"], email.as_str());

    let rotated = app.refresh(refresh).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let rotated = rotated.json();
    let access2 = rotated["access_token"].as_str().unwrap();
    let refresh2 = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(refresh2, refresh, "refresh tokens rotate");
    assert_eq!(app.me(access2).await.status, 200);

    let out = app.logout(access2, Some(refresh2)).await;
    assert!(out.status == 204 || out.status == 200, "{}", out.text);
    app.me(access2)
        .await
        .assert_problem(401, "access token after logout");
    app.refresh(refresh2)
        .await
        .assert_problem(401, "refresh token after logout");
    // A token issued before logout, not itself revoked, still works.
    assert_eq!(app.me(access).await.status, 200);
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_its_family() {
    let app = TestApp::spawn().await;
    let (_, tokens) = app.signed_in_user().await;
    let first = tokens["refresh_token"].as_str().unwrap().to_string();
    let second = app.refresh(&first).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();

    app.refresh(&first)
        .await
        .assert_problem(401, "spent token reused");
    app.refresh(&second)
        .await
        .assert_problem(401, "sibling revoked after reuse");
}

#[tokio::test]
async fn login_failures_are_indistinguishable() {
    let app = TestApp::spawn().await;
    let (email, _) = app.signed_in_user().await;
    let wrong_password = app.login(&email, "not the password").await;
    let unknown_user = app.login("nobody@example.com", "not the password").await;
    wrong_password.assert_problem(401, "wrong password");
    unknown_user.assert_problem(401, "unknown user");
    assert_eq!(wrong_password.json(), unknown_user.json());
}

#[tokio::test]
async fn login_by_username_works() {
    let app = TestApp::spawn().await;
    app.register("bob@example.com", "password123", Some("bob"))
        .await;
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": "bob", "password": "password123"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn duplicate_email_or_username_is_409() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("carol@example.com", "password123", Some("carol"))
            .await
            .status,
        201
    );
    app.register("CAROL@example.com", "password123", None)
        .await
        .assert_problem(409, "same email, other case");
    app.register("other@example.com", "password123", Some("carol"))
        .await
        .assert_problem(409, "same username");
}

#[tokio::test]
async fn patch_me_changes_the_username() {
    let app = TestApp::spawn().await;
    app.register("taken@example.com", "password123", Some("taken"))
        .await;
    let (_, tokens) = app.signed_in_user().await;
    let access = tokens["access_token"].as_str().unwrap();
    let r = app
        .send(
            "PATCH",
            "/auth/me",
            json!({"username": "renamed"}).to_string().into(),
            Some(access),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.me(access).await.json()["username"], "renamed");
    app.send(
        "PATCH",
        "/auth/me",
        json!({"username": "taken"}).to_string().into(),
        Some(access),
    )
    .await
    .assert_problem(409, "username taken");
    app.send(
        "PATCH",
        "/auth/me",
        json!({"username": "x"}).to_string().into(),
        Some(access),
    )
    .await
    .assert_problem(422, "username too short");
}

#[tokio::test]
async fn me_without_a_token_is_401() {
    let app = TestApp::spawn().await;
    let r = app.get("/auth/me", None).await;
    r.assert_problem(401, "no token");
    assert!(r.headers.get("www-authenticate").is_some());
}

#[tokio::test]
async fn health_answers_without_credentials() {
    let app = TestApp::spawn().await;
    let r = app.get("/auth/health", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
}
