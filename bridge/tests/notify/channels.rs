//! `POST /notify` over each channel, with and without the bridge's email
//! and SMS sinks configured.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::gateway::Gateway;
use super::{
    User, address, app_with, body, events_about, events_of, listed, notify, retries, user,
    wait_listed,
};
use crate::common::openapi::Spec;
use crate::common::process::command;
use crate::common::smtp::SmtpServer;
use crate::common::subscriber::eventually;
use crate::common::{TestApp, text};

/// Waits until the notifications function knows `user`'s address (from
/// the `user.registered` event), as `POST /notify` without `to` needs.
async fn wait_for_address(app: &TestApp, user: &User) {
    let db = app.db().await;
    eventually(
        "the user's address reaches the notifications function",
        Duration::from_secs(60),
        || async {
            db.query_opt(
                "SELECT 1 FROM notification_recipients WHERE user_id = $1 AND email = $2",
                &[&user.id, &user.email],
            )
            .await
            .unwrap()
            .is_some()
        },
    )
    .await;
}

/// What older clients send, with nothing configured: every channel
/// answers 200 `sent` at once; `email` and `sms` went to the log (no
/// request event is written), `webhook` to its URL, and each one is
/// listed as sent with its recipient.
#[tokio::test]
async fn every_channel_answers_200_sent_without_sinks() {
    let webhook = Gateway::start(&[]).await;
    let vars = BTreeMap::from([("notification_webhook_url".to_owned(), webhook.url())]);
    let app = app_with(vars, retries()).await;
    let spec = Spec::of(&app).await;
    let ada = user(&app).await;
    wait_for_address(&app, &ada).await;

    let cases: [(&str, Option<&str>, Option<&str>); 4] = [
        ("log", None, None),
        ("webhook", None, None),
        ("email", None, Some(ada.email.as_str())),
        ("sms", Some("+14155550123"), Some("+14155550123")),
    ];
    for (channel, to, recipient) in cases {
        let r = notify(&app, body(&ada.id, channel, "hello", to)).await;
        assert_eq!(r.status, 200, "{channel}: {}", r.text);
        spec.assert_conforms("POST", "/notify", &r);
        let answer = r.json();
        assert_eq!(answer["status"], "sent", "{channel}");
        assert_eq!(answer["channel"], channel);
        assert_eq!(answer["user_id"], ada.id.as_str());
        let id = answer["id"].as_str().unwrap();
        let stored = listed(&app, &ada.token, id).await;
        assert_eq!(stored["status"], "sent", "{channel}: {stored}");
        assert_eq!(stored["recipient"], json!(recipient), "{channel}");
        assert_eq!(stored["kind"], "message");
    }
    let db = app.db().await;
    assert!(
        events_of(&db, "notification.email_requested")
            .await
            .is_empty()
    );
    assert!(
        events_of(&db, "notification.sms_requested")
            .await
            .is_empty()
    );
    let sent = events_of(&db, "notification.sent").await;
    for channel in ["log", "webhook", "email", "sms"] {
        assert!(
            sent.iter()
                .any(|d| d["channel"] == channel && d["user_id"] == ada.id.as_str()),
            "notification.sent for {channel}: {sent:?}"
        );
    }
    let hooked = webhook.received();
    assert_eq!(hooked.len(), 1, "{hooked:?}");
    assert_eq!(
        hooked[0].body,
        json!({"user_id": ada.id, "channel": "webhook", "message": "hello"})
    );
}

/// With an SMTP server configured, an email is queued (202) with its
/// request event, whose message is sealed; the SMTP sink sends it once,
/// as text and HTML from the templates, to the given address; its report
/// turns the notification `sent`, with `notification.sent`.
#[tokio::test]
async fn an_email_is_queued_then_sent_through_smtp_once() {
    let smtp = SmtpServer::start().await;
    let app = app_with(smtp.variables(), retries()).await;
    let spec = Spec::of(&app).await;
    let ada = user(&app).await;
    let to = address("parcel");
    let message = "Your <b>parcel</b> & more";

    let r = notify(&app, body(&ada.id, "email", message, Some(&to))).await;
    assert_eq!(r.status, 202, "{}", r.text);
    spec.assert_conforms("POST", "/notify", &r);
    let answer = r.json();
    assert_eq!(answer["status"], "queued");
    assert_eq!(answer["channel"], "email");
    let id = answer["id"].as_str().unwrap().to_owned();

    let stored = wait_listed(&app, &ada.token, &id, "sent").await;
    assert_eq!(stored["recipient"], to.as_str());
    assert_eq!(stored["error"], Value::Null);
    let email = smtp.wait_for_email(&to).await;
    assert!(email.is_to(&to) && email.to.len() == 1, "{:?}", email.to);
    assert!(email.from.contains("spinmesh tests"), "{}", email.from);
    assert!(
        email.from.ends_with("<no-reply@spinmesh.test>"),
        "{}",
        email.from
    );
    assert_eq!(email.subject, "A message from spinmesh");
    assert!(email.text.contains(message), "{}", email.text);
    assert!(
        email
            .html
            .contains("Your &lt;b&gt;parcel&lt;/b&gt; &amp; more"),
        "{}",
        email.html
    );
    assert!(email.message_id.contains(&id), "{}", email.message_id);

    let db = app.db().await;
    let requested = events_about(&db, "notification.email_requested", &id).await;
    assert_eq!(requested.len(), 1);
    let sealed = requested[0]["message"].as_str().unwrap();
    assert!(
        sealed.starts_with("v1.") && !sealed.contains("parcel"),
        "{sealed}"
    );
    let delivered = events_about(&db, "notification.delivered", &id).await;
    assert_eq!(
        delivered,
        [json!({"version": 1, "notification_id": id, "channel": "email", "status": "sent"})]
    );
    assert_eq!(events_about(&db, "notification.sent", &id).await.len(), 1);
    let source: String = db
        .query_one(
            "SELECT source FROM outbox
              WHERE type = 'notification.delivered' AND data->>'notification_id' = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(source, "/bridge/email");
    assert_eq!(smtp.emails_to(&to).len(), 1, "sent once");

    // Every request delivered to the sink again (`bridge replay`, the
    // binary): the ledger knows it was sent, so nothing goes out twice.
    let mut replay = command(&app.database, &app.keys);
    replay
        .args(["replay", "--subscription", "sink.email"])
        .env("SPIN_VARIABLE_MESSAGE_SEALING_KEY", &app.sealing_key);
    for (name, value) in smtp.variables() {
        replay.env(format!("SPIN_VARIABLE_{}", name.to_uppercase()), value);
    }
    let out = replay.output().await.expect("the bridge binary runs");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(smtp.emails_to(&to).len(), 1, "not sent again");
    assert_eq!(
        events_about(&db, "notification.delivered", &id).await.len(),
        1
    );
}

/// An older client's email names only the user: it goes to the address
/// the user registered with.
#[tokio::test]
async fn an_email_without_to_goes_to_the_registered_address() {
    let smtp = SmtpServer::start().await;
    let app = app_with(smtp.variables(), retries()).await;
    let ada = user(&app).await;
    wait_for_address(&app, &ada).await;

    let r = notify(&app, body(&ada.id, "email", "hi Ada", None)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    wait_listed(&app, &ada.token, &id, "sent").await;
    eventually(
        "the message at the registered address",
        Duration::from_secs(60),
        || async {
            smtp.emails_to(&ada.email)
                .iter()
                .any(|e| e.subject == "A message from spinmesh" && e.text.contains("hi Ada"))
        },
    )
    .await;
}

/// With an SMS gateway configured, an SMS is queued (202) and posted to
/// it as `{to, text, reference}` with the bearer token; a 503 is retried,
/// the 200 that follows settles it as `sent`, and nothing is posted again.
#[tokio::test]
async fn an_sms_is_retried_through_a_5xx_and_delivered_once() {
    let gateway = Gateway::start(&[503]).await;
    let vars = BTreeMap::from([
        ("sms_gateway_url".to_owned(), gateway.url()),
        ("sms_gateway_token".to_owned(), "gw-token".to_owned()),
    ]);
    let app = app_with(vars, retries()).await;
    let spec = Spec::of(&app).await;
    let ada = user(&app).await;

    let r = notify(
        &app,
        body(&ada.id, "sms", "your code is 1234", Some("+14155550123")),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    spec.assert_conforms("POST", "/notify", &r);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let stored = wait_listed(&app, &ada.token, &id, "sent").await;
    assert_eq!(stored["recipient"], "+14155550123");

    let received = gateway.received();
    assert_eq!(received.len(), 2, "one 503, then the 200: {received:?}");
    for request in &received {
        assert_eq!(
            request.body,
            json!({"to": "+14155550123", "text": "your code is 1234", "reference": id})
        );
        assert_eq!(request.authorization.as_deref(), Some("Bearer gw-token"));
        assert_eq!(request.idempotency_key.as_deref(), Some(id.as_str()));
    }
    let db = app.db().await;
    let requested = events_about(&db, "notification.sms_requested", &id).await;
    // `+` is not in base64url: the number cannot hide in the sealed text.
    assert!(!requested[0].to_string().contains("+1415"), "{requested:?}");
    assert_eq!(
        events_about(&db, "notification.delivered", &id).await.len(),
        1
    );
}
