//! Verifying an e-mail address: the token mailed at registration and on
//! a resend, the link, the limits, and logins of unverified accounts.

use serde_json::json;
use sha2::Digest as _;

use super::{PASSWORD, address, app_with, assert_problem_type, log_in, register};
use crate::common::lifecycle::{
    EMAIL_VERIFIED, VERIFICATION_REQUESTED, events_for, expire_tokens, latest_event, mailed_token,
};
use crate::common::{Reply, TestApp};

#[tokio::test]
async fn registration_mails_a_token_that_verifies_the_address_once_and_never_twice() {
    let app = TestApp::spawn().await;
    let email = address();
    let r = app.register(&email, PASSWORD, None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["email_verified"], false);
    let user_id = r.json()["id"].as_str().unwrap().to_owned();

    // The event: the token sealed, never in clear; only its hash stored.
    let data = latest_event(&app, VERIFICATION_REQUESTED, &email)
        .await
        .expect("registration asks for a verification e-mail");
    let token = mailed_token(&app, VERIFICATION_REQUESTED, &email).await;
    assert_eq!(data["version"], 1);
    assert_eq!(data["user_id"], user_id.as_str());
    assert!(data["token"].as_str().unwrap().starts_with("v1."), "{data}");
    assert!(
        !data.to_string().contains(&token),
        "the token travels sealed"
    );
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(data["expires_at"].as_str().unwrap()).unwrap();
    let lifetime = expires_at.signed_duration_since(chrono::Utc::now());
    assert!(
        (86_000..=86_400).contains(&lifetime.num_seconds()),
        "a day by default: {lifetime}"
    );
    let db = app.db().await;
    let stored: Vec<String> = db
        .query("SELECT token_hash FROM account_tokens", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        stored,
        [hex::encode(sha2::Sha256::digest(token.as_bytes()))],
        "stored as its SHA-256 only"
    );

    let (access, _) = log_in(&app, &email, PASSWORD).await;
    assert_eq!(app.me(&access).await.json()["email_verified"], false);

    let verified = app.verify_email(&token).await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(verified.json(), json!({"email_verified": true}));
    assert_eq!(app.me(&access).await.json()["email_verified"], true);

    let again = app.verify_email(&token).await;
    assert_problem_type(&again, 410, "token-used", "the same token again");
    assert_eq!(app.me(&access).await.json()["email_verified"], true);

    // Announced once, in the statement that verified it.
    assert_eq!(events_for(&app, EMAIL_VERIFIED, &email).await, 1);
    let event = latest_event(&app, EMAIL_VERIFIED, &email).await.unwrap();
    assert_eq!(
        event,
        json!({"version": 1, "user_id": user_id, "email": email})
    );
}

#[tokio::test]
async fn every_register_route_mails_a_verification_token() {
    let app = TestApp::spawn().await;
    let (legacy, users) = (address(), address());
    let r = app
        .post_json(
            "/register",
            &json!({"email": legacy, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post_json(
            "/users",
            &json!({"name": "older_client", "email": users, "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    for email in [legacy, users] {
        let token = mailed_token(&app, VERIFICATION_REQUESTED, &email).await;
        assert_eq!(app.verify_email(&token).await.status, 200, "{email}");
    }
}

#[tokio::test]
async fn an_expired_verification_token_is_gone_and_a_resent_one_replaces_it() {
    let app = TestApp::spawn().await;
    let email = address();
    register(&app, &email).await;
    let first = mailed_token(&app, VERIFICATION_REQUESTED, &email).await;
    expire_tokens(&app, "verify_email", &email).await;

    let r = app.verify_email(&first).await;
    assert_problem_type(&r, 410, "token-expired", "an expired token");
    let (access, _) = log_in(&app, &email, PASSWORD).await;
    assert_eq!(app.me(&access).await.json()["email_verified"], false);

    let r = app.resend_verification(&access).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json()["status"], "accepted");
    let second = mailed_token(&app, VERIFICATION_REQUESTED, &email).await;
    assert_ne!(first, second);
    assert_eq!(app.verify_email(&second).await.status, 200);
    assert_eq!(app.me(&access).await.json()["email_verified"], true);

    let r = app.resend_verification(&access).await;
    assert_problem_type(&r, 409, "email-already-verified", "resend when verified");
}

/// A 200 HTML page with `heading`.
fn assert_page(page: &Reply, heading: &str) {
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.content_type(), "text/html; charset=utf-8");
    assert!(
        page.text.contains(&format!("<h1>{heading}</h1>")),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn the_link_in_the_email_answers_a_small_html_page() {
    let app = TestApp::spawn().await;
    let email = address();
    register(&app, &email).await;
    let token = mailed_token(&app, VERIFICATION_REQUESTED, &email).await;
    let (access, _) = log_in(&app, &email, PASSWORD).await;
    let verified = || async { app.me(&access).await.json()["email_verified"] == true };

    // Opening the link spends nothing, however often (a mail scanner and
    // a link preview fetched it before the person did).
    for _ in 0..2 {
        let page = app.open_verification_link(&token).await;
        assert_page(&page, "Confirm your e-mail address");
        assert_eq!(page.headers["cache-control"], "no-store");
        assert_eq!(page.headers["referrer-policy"], "no-referrer");
        assert!(
            page.headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("form-action 'self'"),
            "{:?}",
            page.headers
        );
    }
    assert!(!verified().await, "opening the link verified nothing");

    // The page's button does.
    let done = app.press_verification_button(&token).await;
    assert_page(&done, "E-mail address verified");
    assert!(!done.text.contains("<form"), "{}", done.text);
    assert!(verified().await);

    let cases = [
        (format!("?token={token}"), 410, "already used"),
        ("?token=not-a-token".to_owned(), 422, "malformed"),
        (
            "?token=%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
            422,
            "markup",
        ),
        (
            format!("?token={}", "A".repeat(43)),
            422,
            "well-formed but unknown",
        ),
        (String::new(), 422, "no token"),
        (format!("?token={token}&token={token}"), 422, "twice"),
        (format!("?token={token}&next=x"), 422, "another parameter"),
    ];
    let form = reqwest::Url::parse(&app.url("/auth/verify-email")).unwrap();
    for (query, status, what) in cases {
        // The same through the link and through the form it posts.
        let fields = query.strip_prefix('?').unwrap_or_default().to_owned();
        for page in [
            app.get(&format!("/auth/verify-email{query}"), None).await,
            app.post_form(form.clone(), fields).await,
        ] {
            assert_eq!(page.status, status, "{what}: {}", page.text);
            assert_eq!(page.content_type(), "text/html; charset=utf-8", "{what}");
            assert!(page.text.starts_with("<!doctype html>"), "{what}");
            assert!(!page.text.contains("<script"), "{what}: nothing echoed");
            assert!(!page.text.contains(&token), "{what}: nothing echoed");
            assert!(!page.text.contains("<form"), "{what}: no button");
        }
    }
}

#[tokio::test]
async fn resending_is_limited_per_account_and_only_the_latest_token_works() {
    let app = app_with(&[("email_verification_resend_limit", "2")]).await;
    let (ada, bob) = (address(), address());
    register(&app, &ada).await;
    register(&app, &bob).await;
    let registration_token = mailed_token(&app, VERIFICATION_REQUESTED, &ada).await;
    let (ada_access, _) = log_in(&app, &ada, PASSWORD).await;
    let (bob_access, _) = log_in(&app, &bob, PASSWORD).await;

    for n in 1..=2 {
        let r = app.resend_verification(&ada_access).await;
        assert_eq!(r.status, 202, "resend {n}: {}", r.text);
    }
    let r = app.resend_verification(&ada_access).await;
    assert_problem_type(&r, 429, "rate-limited", "third resend");
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(events_for(&app, VERIFICATION_REQUESTED, &ada).await, 3);

    let r = app.resend_verification(&bob_access).await;
    assert_eq!(r.status, 202, "another account, same address: {}", r.text);

    let r = app.verify_email(&registration_token).await;
    assert_problem_type(&r, 410, "token-expired", "a replaced token");
    let latest = mailed_token(&app, VERIFICATION_REQUESTED, &ada).await;
    assert_eq!(app.verify_email(&latest).await.status, 200);
}

#[tokio::test]
async fn unverified_accounts_log_in_unless_verification_is_required() {
    let open = TestApp::spawn().await;
    let email = address();
    register(&open, &email).await;
    log_in(&open, &email, PASSWORD).await;

    let strict = app_with(&[("email_verification_required", "true")]).await;
    register(&strict, &email).await;
    let r = strict.login(&email, PASSWORD).await;
    assert_problem_type(&r, 403, "email-not-verified", "unverified login");
    let r = strict
        .post_json(
            "/login",
            &json!({"email": email, "password": PASSWORD}),
            None,
        )
        .await;
    assert_problem_type(&r, 403, "email-not-verified", "unverified legacy login");
    let r = strict.login(&email, "not the password").await;
    assert_problem_type(&r, 401, "unauthorized", "a wrong password learns nothing");
    let older = address();
    let r = strict
        .post_json(
            "/register",
            &json!({"email": older, "password": PASSWORD}),
            None,
        )
        .await;
    assert_problem_type(
        &r,
        403,
        "email-not-verified",
        "no token from the older register",
    );
    assert_eq!(events_for(&strict, VERIFICATION_REQUESTED, &older).await, 1);

    let token = mailed_token(&strict, VERIFICATION_REQUESTED, &email).await;
    assert_eq!(strict.verify_email(&token).await.status, 200);
    let (access, refresh) = log_in(&strict, &email, PASSWORD).await;
    assert_eq!(strict.me(&access).await.json()["email_verified"], true);
    let r = strict.refresh(&refresh).await;
    assert_eq!(r.status, 200, "a verified account refreshes: {}", r.text);
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_string();

    // An account holding a refresh token without a verified address (one
    // issued before the deployment required verification) gets no new
    // tokens that way either.
    let unverified = strict
        .db()
        .await
        .execute(
            "UPDATE users SET email_verified_at = NULL WHERE email = $1",
            &[&email],
        )
        .await
        .unwrap();
    assert_eq!(unverified, 1);
    let r = strict.refresh(&refresh).await;
    assert_problem_type(&r, 403, "email-not-verified", "unverified refresh");
    // The presented token is spent, and no successor was stored for it.
    let usable: i64 = strict
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM refresh_tokens t JOIN users u ON u.id = t.user_id \
             WHERE u.email = $1 AND t.used_at IS NULL AND t.revoked_at IS NULL",
            &[&email],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        usable, 0,
        "the presented token is spent and no successor was stored"
    );
}
