//! Changing a password with the current one; and the mailed tokens and
//! access tokens never standing in for each other.

use super::{NEW_PASSWORD, PASSWORD, address, assert_problem_type, log_in, register};
use crate::common::lifecycle::{
    PASSWORD_CHANGED, PASSWORD_RESET_REQUESTED, VERIFICATION_REQUESTED, latest_event, mailed_token,
};
use crate::common::{Reply, TestApp};

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_ends_the_other_sessions() {
    let app = TestApp::spawn().await;
    let email = address();
    register(&app, &email).await;
    let (access, refresh) = log_in(&app, &email, PASSWORD).await;
    let (other_access, other_refresh) = log_in(&app, &email, PASSWORD).await;
    assert_eq!(app.me(&other_access).await.status, 200);

    let r = app
        .change_password(&access, "not the password", NEW_PASSWORD)
        .await;
    assert_problem_type(&r, 403, "wrong-password", "a wrong current password");
    assert_eq!(app.me(&other_access).await.status, 200, "nothing changed");
    let r = app.change_password("", PASSWORD, NEW_PASSWORD).await;
    r.assert_problem(401, "no access token");

    let r = app.change_password(&access, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let pair = r.json();
    let new_access = pair["access_token"].as_str().unwrap();
    let new_refresh = pair["refresh_token"].as_str().unwrap();
    // Issued in the same second as the change, and still on the right side.
    assert_eq!(
        app.me(new_access).await.status,
        200,
        "the caller's new token"
    );

    for (what, token) in [("caller's old", &access), ("other", &other_access)] {
        app.me(token)
            .await
            .assert_problem(401, &format!("the {what} access token"));
    }
    for (what, token) in [("caller's old", &refresh), ("other", &other_refresh)] {
        app.refresh(token)
            .await
            .assert_problem(401, &format!("the {what} refresh token"));
    }
    let refreshed = app.refresh(new_refresh).await;
    assert_eq!(refreshed.status, 200, "the caller's new refresh token");
    let refreshed_access = refreshed.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.me(&refreshed_access).await.status, 200);

    app.login(&email, PASSWORD)
        .await
        .assert_problem(401, "the old password");
    log_in(&app, &email, NEW_PASSWORD).await;
    let event = latest_event(&app, PASSWORD_CHANGED, &email).await.unwrap();
    assert_eq!(event["how"], "changed");
}

#[tokio::test]
async fn mailed_tokens_and_access_tokens_are_never_interchangeable() {
    let app = TestApp::spawn().await;
    let email = address();
    register(&app, &email).await;
    app.request_password_reset(&email).await;
    let verification = mailed_token(&app, VERIFICATION_REQUESTED, &email).await;
    let reset = mailed_token(&app, PASSWORD_RESET_REQUESTED, &email).await;
    let (access, refresh) = log_in(&app, &email, PASSWORD).await;

    for (what, token) in [
        ("a verification token", &verification),
        ("a reset token", &reset),
        ("a refresh token", &refresh),
    ] {
        app.me(token)
            .await
            .assert_problem(401, &format!("{what} as a bearer token"));
    }
    let cases: [(&str, Reply); 5] = [
        ("an access token to verify", app.verify_email(&access).await),
        (
            "an access token in the link",
            app.open_verification_link(&access).await,
        ),
        (
            "an access token to reset",
            app.confirm_password_reset(&access, NEW_PASSWORD).await,
        ),
        ("a reset token to verify", app.verify_email(&reset).await),
        (
            "a verification token to reset",
            app.confirm_password_reset(&verification, NEW_PASSWORD)
                .await,
        ),
    ];
    for (what, r) in cases {
        assert_eq!(r.status, 422, "{what}: {}", r.text);
    }
    // Both mailed tokens still do their own job.
    assert_eq!(app.verify_email(&verification).await.status, 200);
    let r = app.confirm_password_reset(&reset, NEW_PASSWORD).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
