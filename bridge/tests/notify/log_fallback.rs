//! `bridge up`, the real process, with no SMTP server and no SMS gateway
//! configured: emails and SMS are delivered to its log and say so, and
//! an account email's link is there for a developer to open.

use serde_json::json;
use spinmesh_delivery::seal;

use super::bridge_up::{BridgeUp, SEALING_KEY};

#[tokio::test]
async fn without_sinks_emails_and_their_links_go_to_the_log() {
    let up = BridgeUp::start(&[]).await;
    let client = reqwest::Client::new();

    // An older client's email: 200 sent, delivered to the log.
    let to = format!("ada-{}@example.com", uuid::Uuid::new_v4().simple());
    let r = client
        .post(format!("{}/notify", up.base))
        .json(&json!({"user_id": "u1", "channel": "email", "message": "hello Ada", "to": to}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["status"], "sent");
    let id = answer["id"].as_str().unwrap();
    up.logged(&format!(
        "notification {id} to user u1: no SMTP server configured (smtp_host is empty): email delivered to the log"
    ))
    .await;
    up.logged(&format!("To: {to}")).await;
    up.logged("Subject: A message from spinmesh").await;
    assert!(
        up.lines()
            .iter()
            .any(|l| l.starts_with("[notifications ") && l.ends_with("hello Ada")),
        "the text, each line prefixed with the component"
    );

    // An SMS: the same, for the SMS gateway.
    let r = client
        .post(format!("{}/notify", up.base))
        .json(
            &json!({"user_id": "u1", "channel": "sms", "message": "code 42", "to": "+14155550123"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    up.logged("no SMS gateway configured (sms_gateway_url is empty): sms delivered to the log")
        .await;

    // A verification request, as auth writes it: the link is in the log.
    let ty = "user.verification_requested";
    let data = json!({
        "version": 1, "user_id": "u1", "email": to,
        "token": seal::seal(SEALING_KEY, ty, b"tok/en", [3; 12]),
        "expires_at": "2026-12-04T16:00:00Z",
    });
    up.db()
        .await
        .execute(
            "INSERT INTO outbox (id, source, type, subject, aggregate, data)
             VALUES ($1, '/auth', $2, 'user/u1', 'users', $3)",
            &[&uuid::Uuid::new_v4(), &ty, &data],
        )
        .await
        .unwrap();
    up.logged("Subject: Confirm your email address").await;
    up.logged("http://127.0.0.1:3000/auth/verify-email?token=tok%2Fen")
        .await;
}
