//! Bad input to every lifecycle route gets a clear problem, and every
//! answer is one the OpenAPI document describes.

use serde_json::{Value, json};

use super::{NEW_PASSWORD, PASSWORD, address, app_with, log_in};
use crate::common::lifecycle::{PASSWORD_RESET_REQUESTED, VERIFICATION_REQUESTED, mailed_token};
use crate::common::openapi::Spec;
use crate::common::{Reply, TestApp};

/// A row: the route, what is wrong, the body, the bearer token, the status.
type Case<'a> = (&'a str, &'a str, Vec<u8>, Option<&'a str>, u16);

#[tokio::test]
async fn bad_input_to_the_lifecycle_routes_gets_clear_problems() {
    let app = TestApp::spawn().await;
    let (_, tokens) = app.signed_in_user().await;
    let access = tokens["access_token"].as_str().unwrap();
    let jwt = access;
    let huge = |field: &str| format!("{{\"{field}\":\"{}\"}}", "x".repeat(2 << 20)).into_bytes();
    let json = |value: Value| value.to_string().into_bytes();
    let token = "A".repeat(43);
    let cases: Vec<Case<'_>> = vec![
        (
            "/auth/verify-email",
            "malformed JSON",
            b"{\"token\": ".to_vec(),
            None,
            400,
        ),
        (
            "/auth/verify-email",
            "not an object",
            b"[\"x\"]".to_vec(),
            None,
            400,
        ),
        ("/auth/verify-email", "empty body", Vec::new(), None, 400),
        (
            "/auth/verify-email",
            "token of the wrong type",
            json(json!({"token": 42})),
            None,
            422,
        ),
        (
            "/auth/verify-email",
            "missing token",
            json(json!({})),
            None,
            422,
        ),
        (
            "/auth/verify-email",
            "empty token",
            json(json!({"token": ""})),
            None,
            422,
        ),
        (
            "/auth/verify-email",
            "a JWT as the token",
            json(json!({"token": jwt})),
            None,
            422,
        ),
        (
            "/auth/verify-email",
            "NUL in the token",
            json(json!({"token": "a\u{0}b"})),
            None,
            422,
        ),
        (
            "/auth/verify-email",
            "unknown token",
            json(json!({"token": token})),
            None,
            422,
        ),
        ("/auth/verify-email", "2 MiB body", huge("token"), None, 413),
        (
            "/auth/verify-email/resend",
            "no bearer token",
            Vec::new(),
            None,
            401,
        ),
        (
            "/auth/verify-email/resend",
            "a garbage bearer token",
            Vec::new(),
            Some("x.y.z"),
            401,
        ),
        (
            "/auth/password-reset",
            "malformed JSON",
            b"{".to_vec(),
            None,
            400,
        ),
        ("/auth/password-reset", "empty body", Vec::new(), None, 400),
        (
            "/auth/password-reset",
            "email of the wrong type",
            json(json!({"email": ["a"]})),
            None,
            422,
        ),
        (
            "/auth/password-reset",
            "missing email",
            json(json!({"mail": "a@b.co"})),
            None,
            422,
        ),
        (
            "/auth/password-reset",
            "invalid email",
            json(json!({"email": "no-at-sign"})),
            None,
            422,
        ),
        (
            "/auth/password-reset",
            "2 MiB body",
            huge("email"),
            None,
            413,
        ),
        (
            "/auth/password-reset/confirm",
            "malformed JSON",
            b"{\"token\"".to_vec(),
            None,
            400,
        ),
        (
            "/auth/password-reset/confirm",
            "not an object",
            b"42".to_vec(),
            None,
            400,
        ),
        (
            "/auth/password-reset/confirm",
            "missing new_password",
            json(json!({"token": token})),
            None,
            422,
        ),
        (
            "/auth/password-reset/confirm",
            "new_password of the wrong type",
            json(json!({"token": token, "new_password": 12345678})),
            None,
            422,
        ),
        (
            "/auth/password-reset/confirm",
            "short new_password",
            json(json!({"token": token, "new_password": "short"})),
            None,
            422,
        ),
        (
            "/auth/password-reset/confirm",
            "a JWT as the token",
            json(json!({"token": jwt, "new_password": NEW_PASSWORD})),
            None,
            422,
        ),
        (
            "/auth/password-reset/confirm",
            "unknown token",
            json(json!({"token": token, "new_password": NEW_PASSWORD})),
            None,
            422,
        ),
        (
            "/auth/password-reset/confirm",
            "2 MiB body",
            huge("token"),
            None,
            413,
        ),
        (
            "/auth/password",
            "no bearer token",
            json(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
            None,
            401,
        ),
        (
            "/auth/password",
            "a mailed token as the bearer token",
            json(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
            Some(token.as_str()),
            401,
        ),
        (
            "/auth/password",
            "malformed JSON",
            b"{".to_vec(),
            Some(access),
            400,
        ),
        (
            "/auth/password",
            "empty body",
            Vec::new(),
            Some(access),
            400,
        ),
        (
            "/auth/password",
            "missing current_password",
            json(json!({"new_password": NEW_PASSWORD})),
            Some(access),
            422,
        ),
        (
            "/auth/password",
            "current_password of the wrong type",
            json(json!({"current_password": true, "new_password": NEW_PASSWORD})),
            Some(access),
            422,
        ),
        (
            "/auth/password",
            "short new_password",
            json(json!({"current_password": PASSWORD, "new_password": "short"})),
            Some(access),
            422,
        ),
        (
            "/auth/password",
            "an unchanged password",
            json(json!({"current_password": PASSWORD, "new_password": PASSWORD})),
            Some(access),
            422,
        ),
        (
            "/auth/password",
            "2 MiB body",
            huge("current_password"),
            Some(access),
            413,
        ),
    ];
    for (path, what, body, bearer, status) in cases {
        let r = app.send("POST", path, body, bearer).await;
        r.assert_problem(status, &format!("POST {path}: {what}"));
    }
    for (method, path) in [
        ("PUT", "/auth/verify-email"),
        ("GET", "/auth/verify-email/resend"),
        ("GET", "/auth/password-reset"),
        ("DELETE", "/auth/password"),
    ] {
        app.send(method, path, Vec::new(), None)
            .await
            .assert_problem(405, &format!("{method} {path}"));
    }
    // The account is untouched by all of it.
    assert_eq!(app.me(access).await.json()["email_verified"], false);
}

#[tokio::test]
async fn lifecycle_answers_conform_to_the_openapi_document() {
    let app = app_with(&[("email_verification_resend_limit", "2")]).await;
    let spec = Spec::of(&app).await;
    let checked = |method: &str, template: &str, status: u16, r: Reply| {
        assert_eq!(r.status, status, "{method} {template}: {}", r.text);
        spec.assert_conforms(method, template, &r);
    };
    let email = address();
    checked(
        "POST",
        "/auth/register",
        201,
        app.register(&email, PASSWORD, None).await,
    );
    let verification = mailed_token(&app, VERIFICATION_REQUESTED, &email).await;
    let (access, _) = log_in(&app, &email, PASSWORD).await;
    checked("GET", "/auth/me", 200, app.me(&access).await);

    let unknown = "A".repeat(43);
    checked(
        "POST",
        "/auth/verify-email",
        422,
        app.verify_email(&unknown).await,
    );
    checked(
        "GET",
        "/auth/verify-email",
        422,
        app.open_verification_link(&unknown).await,
    );
    let resend = "/auth/verify-email/resend";
    checked("POST", resend, 202, app.resend_verification(&access).await);
    checked(
        "POST",
        "/auth/verify-email",
        410,
        app.verify_email(&verification).await,
    );
    let latest = mailed_token(&app, VERIFICATION_REQUESTED, &email).await;
    checked(
        "GET",
        "/auth/verify-email",
        200,
        app.open_verification_link(&latest).await,
    );
    checked(
        "POST",
        "/auth/verify-email",
        200,
        app.press_verification_button(&latest).await,
    );
    checked(
        "GET",
        "/auth/verify-email",
        410,
        app.open_verification_link(&latest).await,
    );
    checked(
        "POST",
        "/auth/verify-email",
        410,
        app.verify_email(&latest).await,
    );
    checked("POST", resend, 409, app.resend_verification(&access).await);
    checked("POST", resend, 429, app.resend_verification(&access).await);

    let reset = "/auth/password-reset";
    checked("POST", reset, 202, app.request_password_reset(&email).await);
    checked(
        "POST",
        reset,
        202,
        app.request_password_reset(&address()).await,
    );
    checked("POST", reset, 422, app.request_password_reset("nope").await);
    let token = mailed_token(&app, PASSWORD_RESET_REQUESTED, &email).await;
    let confirm = "/auth/password-reset/confirm";
    checked(
        "POST",
        confirm,
        422,
        app.confirm_password_reset(&unknown, NEW_PASSWORD).await,
    );
    checked(
        "POST",
        confirm,
        200,
        app.confirm_password_reset(&token, NEW_PASSWORD).await,
    );
    checked(
        "POST",
        confirm,
        410,
        app.confirm_password_reset(&token, NEW_PASSWORD).await,
    );

    let (access, _) = log_in(&app, &email, NEW_PASSWORD).await;
    let change = "/auth/password";
    checked(
        "POST",
        change,
        403,
        app.change_password(&access, PASSWORD, "x".repeat(9).as_str())
            .await,
    );
    checked(
        "POST",
        change,
        422,
        app.change_password(&access, NEW_PASSWORD, "short").await,
    );
    checked(
        "POST",
        change,
        200,
        app.change_password(&access, NEW_PASSWORD, PASSWORD).await,
    );
    checked(
        "POST",
        change,
        401,
        app.change_password(&access, PASSWORD, NEW_PASSWORD).await,
    );

    let strict = app_with(&[("email_verification_required", "true")]).await;
    let spec = Spec::of(&strict).await;
    let other = address();
    let r = strict
        .post_json(
            "/register",
            &json!({"email": other, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    spec.assert_conforms("POST", "/register", &r);
    let r = strict.login(&other, PASSWORD).await;
    assert_eq!(r.status, 403, "{}", r.text);
    spec.assert_conforms("POST", "/auth/login", &r);
}
