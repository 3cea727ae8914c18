//! The account lifecycle through real email: the whole event path runs
//! (auth → outbox → notifications → the bridge's SMTP sink), a real SMTP
//! server (aiosmtpd) receives the messages, and every token a test uses
//! is the one the email carries, read from the message's link.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::{NEW_PASSWORD, PASSWORD, address, assert_problem_type, log_in, register};
use crate::common::smtp::{Email, SmtpServer};
use crate::common::subscriber::{eventually, fast};
use crate::common::{Options, TestApp};

/// The app with its event path on and the email sink pointed at `smtp`.
async fn mailing_app(smtp: &SmtpServer) -> TestApp {
    TestApp::spawn_with(Options {
        extra_vars: smtp.variables(),
        events: Some(fast()),
        ..Options::default()
    })
    .await
}

/// The newest email to `to` whose subject mentions `topic`.
async fn email_about(smtp: &SmtpServer, to: &str, topic: &str) -> Email {
    eventually(
        &format!("an email about {topic:?} to {to}"),
        Duration::from_secs(60),
        || async {
            smtp.emails_to(to)
                .iter()
                .any(|e| e.subject.to_lowercase().contains(topic))
        },
    )
    .await;
    smtp.emails_to(to)
        .into_iter()
        .rev()
        .find(|e| e.subject.to_lowercase().contains(topic))
        .unwrap()
}

#[tokio::test]
async fn the_emailed_verification_token_verifies_the_account_once_and_never_twice() {
    let smtp = SmtpServer::start().await;
    let app = mailing_app(&smtp).await;
    let email = address();
    register(&app, &email).await;

    let mail = email_about(&smtp, &email, "confirm your email").await;
    let token = mail
        .token()
        .unwrap_or_else(|| panic!("no link with a token in {:?}", mail.text));
    assert!(
        mail.html.contains(&token) || mail.html.contains("token="),
        "the HTML part carries the link too"
    );
    let (access, _) = log_in(&app, &email, PASSWORD).await;
    assert_eq!(app.me(&access).await.json()["email_verified"], false);

    let first = app.verify_email(&token).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(app.me(&access).await.json()["email_verified"], true);
    let again = app.verify_email(&token).await;
    assert_problem_type(&again, 410, "token-used", "the same emailed token twice");
    let clicked = app.open_verification_link(&token).await;
    assert_eq!(clicked.status, 410, "the link after use: {}", clicked.text);

    // The emailed token is no access token, and it travelled sealed.
    assert_eq!(app.me(&token).await.status, 401);
    let db = app.db().await;
    let in_clear: i64 = db
        .query_one(
            "SELECT count(*) FROM outbox WHERE data::text LIKE '%' || $1 || '%'",
            &[&token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_clear, 0, "the raw token is nowhere in the outbox");
    assert_eq!(smtp.emails_to(&email).len(), 1, "one verification email");
}

#[tokio::test]
async fn a_reset_mails_the_known_address_only_and_its_token_ends_every_session_once() {
    let smtp = SmtpServer::start().await;
    let app = mailing_app(&smtp).await;
    let known = address();
    let unknown = address();
    register(&app, &known).await;
    email_about(&smtp, &known, "confirm your email").await;
    let (old_access, old_refresh) = log_in(&app, &known, PASSWORD).await;

    let for_unknown = app.request_password_reset(&unknown).await;
    let for_known = app.request_password_reset(&known).await;
    assert_eq!(for_known.status, 202, "{}", for_known.text);
    assert_eq!(
        (for_unknown.status, &for_unknown.text),
        (for_known.status, &for_known.text),
        "the same answer for an unknown address"
    );

    let mail = email_about(&smtp, &known, "reset your password").await;
    let token = mail
        .token()
        .unwrap_or_else(|| panic!("no link with a token in {:?}", mail.text));
    assert!(
        mail.text.contains(&token),
        "the text shows the token for the confirm route"
    );

    let confirmed = app.confirm_password_reset(&token, NEW_PASSWORD).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let twice = app
        .confirm_password_reset(&token, "another horse battery")
        .await;
    assert_eq!(
        twice.status, 410,
        "a reset token works once: {}",
        twice.text
    );

    assert_eq!(app.me(&old_access).await.status, 401, "old access token");
    let refreshed = app
        .post_json(
            "/auth/refresh",
            &json!({"refresh_token": old_refresh}),
            None,
        )
        .await;
    assert_eq!(
        refreshed.status, 401,
        "old refresh token: {}",
        refreshed.text
    );
    assert_eq!(
        app.login(&known, PASSWORD).await.status,
        401,
        "old password"
    );
    log_in(&app, &known, NEW_PASSWORD).await;

    // The change is announced by email too; by then every event of this
    // test has passed the sink, and nothing went to the unknown address.
    email_about(&smtp, &known, "your password was reset").await;
    let notices: Vec<String> = smtp
        .emails_to(&known)
        .iter()
        .map(|e| e.subject.clone())
        .collect();
    assert_eq!(notices.len(), 3, "verify, reset, changed: {notices:?}");
    assert!(smtp.emails_to(&unknown).is_empty(), "nothing to {unknown}");
    eventually(
        "every email of the account reported sent",
        Duration::from_secs(30),
        || async {
            let db = app.db().await;
            let sent: i64 = db
                .query_one(
                    "SELECT count(*) FROM notifications WHERE recipient = $1 \
                     AND channel = 'email' AND status = 'sent'",
                    &[&known],
                )
                .await
                .unwrap()
                .get(0);
            sent == 3
        },
    )
    .await;
    let statuses: BTreeMap<String, i64> = app
        .db()
        .await
        .query(
            "SELECT status, count(*) FROM notifications WHERE recipient = $1 GROUP BY status",
            &[&known],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        statuses,
        BTreeMap::from([("sent".to_owned(), 3)]),
        "no failed or queued notification"
    );
}
