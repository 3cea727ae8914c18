//! The auth function's account events become emails with their links.
//! The events are written here as auth writes them (source `/auth`, the
//! token sealed with the app's `message_sealing_key`), so these tests
//! pin the contract on the notifications side; the flows through auth
//! itself are the auth suite's.

use std::time::Duration;

use serde_json::{Value, json};
use spinmesh_delivery::seal;
use tokio_postgres::Client;

use super::{address, app_with, retries};
use crate::common::smtp::SmtpServer;
use crate::common::subscriber::eventually;

/// Writes an auth event for `user_id` into the outbox.
async fn emit(db: &Client, ty: &str, user_id: &str, data: Value) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    db.execute(
        "INSERT INTO outbox (id, source, type, subject, aggregate, data)
         VALUES ($1, '/auth', $2, $3, 'users', $4)",
        &[&id, &ty, &format!("user/{user_id}"), &data],
    )
    .await
    .unwrap();
    id
}

/// A token-carrying event's data, the token sealed with `key`.
fn token_data(ty: &str, key: &str, user_id: &str, email: &str, token: &str) -> Value {
    json!({
        "version": 1,
        "user_id": user_id,
        "email": email,
        "token": seal::seal(key, ty, token.as_bytes(), rand_nonce()),
        "expires_at": "2026-12-04T16:00:00Z",
    })
}

fn rand_nonce() -> [u8; 12] {
    let id = uuid::Uuid::new_v4();
    id.as_bytes()[..12].try_into().unwrap()
}

/// Verification, reset and change notice: each becomes its email (text
/// and HTML) at the account's address, with links under the configured
/// `public_base_url` carrying the opened token; each is stored once with
/// its kind and its subject, never its token; the address is remembered
/// for `POST /notify`.
#[tokio::test]
async fn account_events_become_emails_with_their_links() {
    let smtp = SmtpServer::start().await;
    let mut vars = smtp.variables();
    vars.insert(
        "public_base_url".to_owned(),
        "https://spinmesh.example.com/".to_owned(),
    );
    let app = app_with(vars, retries()).await;
    let db = app.db().await;
    let user_id = uuid::Uuid::new_v4().to_string();
    let to = address("account");
    let verify_token = "verify+token/1=";
    let reset_token = "reset token";

    let verify = "user.verification_requested";
    let reset = "user.password_reset_requested";
    let key = &app.sealing_key;
    emit(
        &db,
        verify,
        &user_id,
        token_data(verify, key, &user_id, &to, verify_token),
    )
    .await;
    emit(
        &db,
        reset,
        &user_id,
        token_data(reset, key, &user_id, &to, reset_token),
    )
    .await;
    let changed = json!({"version": 1, "user_id": user_id, "email": to, "how": "reset"});
    emit(&db, "user.password_changed", &user_id, changed).await;

    let emails = {
        eventually("three account emails", Duration::from_secs(60), || async {
            smtp.emails_to(&to).len() >= 3
        })
        .await;
        smtp.emails_to(&to)
    };
    let by_subject = |subject: &str| {
        emails
            .iter()
            .find(|e| e.subject == subject)
            .unwrap_or_else(|| panic!("no email {subject:?}: {emails:?}"))
    };

    let verification = by_subject("Confirm your email address");
    let link = "https://spinmesh.example.com/auth/verify-email?token=verify%2Btoken%2F1%3D";
    assert_eq!(verification.link("https://").as_deref(), Some(link));
    assert_eq!(verification.token().as_deref(), Some(verify_token));
    assert!(verification.text.contains(verify_token));
    assert!(verification.text.contains("2026-12-04T16:00:00Z"));
    assert!(
        verification.html.contains(&format!("href=\"{link}\"")),
        "{}",
        verification.html
    );

    let reset_email = by_subject("Reset your password");
    assert_eq!(
        reset_email.link("https://").as_deref(),
        Some("https://spinmesh.example.com/reset-password?token=reset+token")
    );
    assert_eq!(reset_email.token().as_deref(), Some(reset_token));
    assert!(
        reset_email
            .text
            .contains("POST https://spinmesh.example.com/auth/password-reset/confirm")
    );

    let notice = by_subject("Your password was reset");
    assert!(notice.text.contains(&to));
    assert!(
        notice
            .html
            .contains("https://spinmesh.example.com/reset-password")
    );

    eventually("all three sent", Duration::from_secs(60), || async {
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM notifications WHERE user_id = $1 AND status = 'sent'",
                &[&user_id],
            )
            .await
            .unwrap()
            .get(0);
        n == 3
    })
    .await;
    let stored = db
        .query(
            "SELECT kind, message, channel, recipient FROM notifications
              WHERE user_id = $1 ORDER BY kind",
            &[&user_id],
        )
        .await
        .unwrap();
    let stored: Vec<(String, String, String, String)> = stored
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        stored,
        [
            ("password_changed", "Your password was reset"),
            ("password_reset", "Reset your password"),
            ("verify_email", "Confirm your email address"),
        ]
        .map(|(kind, subject)| (kind.into(), subject.into(), "email".into(), to.clone()))
    );
    let remembered: String = db
        .query_one(
            "SELECT email FROM notification_recipients WHERE user_id = $1",
            &[&user_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(remembered, to);
    assert_eq!(smtp.emails_to(&to).len(), 3, "each email once");
}

/// An account event whose token does not open with the app's key (sealed
/// with another key) is refused (422) and dead-lettered for the
/// notifications subscription; no email goes out.
#[tokio::test]
async fn an_account_event_whose_token_does_not_open_is_dead_lettered() {
    let smtp = SmtpServer::start().await;
    let app = app_with(smtp.variables(), retries()).await;
    let db = app.db().await;
    let user_id = uuid::Uuid::new_v4().to_string();
    let to = address("forged");
    let ty = "user.verification_requested";
    let event = emit(
        &db,
        ty,
        &user_id,
        token_data(ty, "not the app's key", &user_id, &to, "t"),
    )
    .await;

    eventually(
        "the event dead-lettered",
        Duration::from_secs(60),
        || async {
            db.query_opt(
                "SELECT 1 FROM bridge_dead_letters
              WHERE subscription = 'notifications' AND event_id = $1 AND status = 422",
                &[&event],
            )
            .await
            .unwrap()
            .is_some()
        },
    )
    .await;
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM notifications WHERE user_id = $1",
            &[&user_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    assert!(smtp.emails_to(&to).is_empty());
}
