//! The SMTP server away, refusing or deferring, and an SMS gateway that
//! refuses: retries, dead letters, and the notifications' final status.

use std::collections::BTreeMap;

use bridge::events::metrics::RETRIED;

use super::gateway::Gateway;
use super::{address, app_with, body, events_about, notify, retries, status_of, user, wait_status};
use crate::common::metrics::metrics_when;
use crate::common::process::command;
use crate::common::smtp::SmtpServer;
use crate::common::subscriber::fast;
use crate::common::text;

/// A sink's dead letters: (event type, attempts, error).
async fn dead_letters(db: &tokio_postgres::Client, sink: &str) -> Vec<(String, i32, String)> {
    db.query(
        "SELECT type, attempts, error FROM bridge_dead_letters WHERE subscription = $1 ORDER BY id",
        &[&format!("sink.{sink}")],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Emails sent while the SMTP server is down are retried (the sink's
/// retries show in the metrics) and delivered when it is back, each
/// exactly once; every notification ends `sent`.
#[tokio::test]
async fn emails_sent_while_the_smtp_server_is_down_arrive_once_when_it_returns() {
    let mut smtp = SmtpServer::start().await;
    let app = app_with(smtp.variables(), retries()).await;
    let db = app.db().await;
    let ada = user(&app).await;
    smtp.stop().await;

    let mut sent = Vec::new();
    for n in 0..3 {
        let to = address(&format!("outage{n}"));
        let r = notify(
            &app,
            body(&ada.id, "email", &format!("message {n}"), Some(&to)),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text);
        sent.push((r.json()["id"].as_str().unwrap().to_owned(), to));
    }
    metrics_when(&app.metrics_url(), "the SMTP sink retrying", |m| {
        m.count(RETRIED, &[("subscription", "sink.email")]) >= 3.0
    })
    .await;
    for (id, _) in &sent {
        assert_eq!(status_of(&db, id).await.0, "queued", "nothing sent yet");
    }

    smtp.restart().await;
    for (id, _) in &sent {
        wait_status(&db, id, "sent").await;
    }
    for (n, (id, to)) in sent.iter().enumerate() {
        let emails = smtp.emails_to(to);
        assert_eq!(emails.len(), 1, "message {n} arrived once: {emails:?}");
        assert!(emails[0].text.contains(&format!("message {n}")));
        assert_eq!(
            events_about(&db, "notification.delivered", id).await.len(),
            1
        );
    }
    assert!(dead_letters(&db, "email").await.is_empty());
}

/// A recipient the server refuses for good (550) is not retried: the
/// request is dead-lettered after one attempt and the notification turns
/// `failed` with the server's reason; its report carries the reason
/// sealed (it names the address).
#[tokio::test]
async fn an_email_the_server_refuses_is_dead_lettered_and_failed() {
    let smtp = SmtpServer::start().await;
    let app = app_with(smtp.variables(), retries()).await;
    let db = app.db().await;
    let ada = user(&app).await;
    let to = address("refuse");

    let r = notify(&app, body(&ada.id, "email", "never arrives", Some(&to))).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    wait_status(&db, &id, "failed").await;

    let (_, error) = status_of(&db, &id).await;
    let error = error.unwrap();
    assert!(error.contains("550"), "{error}");
    let dead = dead_letters(&db, "email").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "notification.email_requested");
    assert_eq!(dead[0].1, 1, "a permanent refusal is not retried");
    let failed = events_about(&db, "notification.delivery_failed", &id).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["status"], "failed");
    let sealed = failed[0]["error"].as_str().unwrap();
    assert!(
        sealed.starts_with("v1.") && !sealed.contains("refuse"),
        "{sealed}"
    );
    assert!(smtp.emails_to(&to).is_empty());
}

/// A server that keeps deferring a recipient (451) is retried until the
/// sink's attempts run out; then the notification turns `failed`.
#[tokio::test]
async fn a_deferring_server_is_retried_until_the_attempts_run_out() {
    let smtp = SmtpServer::start().await;
    let app = app_with(smtp.variables(), fast()).await;
    let db = app.db().await;
    let ada = user(&app).await;
    let to = address("busy");

    let r = notify(&app, body(&ada.id, "email", "later", Some(&to))).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    wait_status(&db, &id, "failed").await;

    assert!(status_of(&db, &id).await.1.unwrap().contains("451"));
    let dead = dead_letters(&db, "email").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].1, 12, "every attempt the manifest allows");
}

/// An SMS the gateway refuses (4xx) is not retried: dead-lettered at
/// once, the notification `failed`.
#[tokio::test]
async fn an_sms_the_gateway_refuses_fails_at_once() {
    let gateway = Gateway::start(&[400]).await;
    let vars = BTreeMap::from([("sms_gateway_url".to_owned(), gateway.url())]);
    let app = app_with(vars, retries()).await;
    let db = app.db().await;
    let ada = user(&app).await;

    let r = notify(&app, body(&ada.id, "sms", "hi", Some("+4915112345678"))).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    wait_status(&db, &id, "failed").await;

    assert!(status_of(&db, &id).await.1.unwrap().contains("400"));
    assert_eq!(gateway.received().len(), 1);
    let dead = dead_letters(&db, "sms").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].1, 1);
}

/// A failed SMS stays failed until its dead letter is redriven
/// (`bridge dead-letters redrive`, the binary): once the gateway takes it,
/// the notification moves from `failed` to `sent`.
#[tokio::test]
async fn a_failed_sms_redriven_once_the_gateway_takes_it_is_sent() {
    let gateway = Gateway::start(&[400]).await;
    let vars = BTreeMap::from([("sms_gateway_url".to_owned(), gateway.url())]);
    let app = app_with(vars, retries()).await;
    let db = app.db().await;
    let ada = user(&app).await;
    let r = notify(&app, body(&ada.id, "sms", "again", Some("+4915112345678"))).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    wait_status(&db, &id, "failed").await;

    let out = command(&app.database, &app.keys)
        .args([
            "dead-letters",
            "redrive",
            "--all",
            "--subscription",
            "sink.sms",
        ])
        .env("SPIN_VARIABLE_SMS_GATEWAY_URL", gateway.url())
        .env("SPIN_VARIABLE_MESSAGE_SEALING_KEY", &app.sealing_key)
        .output()
        .await
        .expect("the bridge binary runs");
    assert!(out.status.success(), "{}", text(&out));

    wait_status(&db, &id, "sent").await;
    assert_eq!(status_of(&db, &id).await.1, None, "the error is cleared");
    assert_eq!(gateway.received().len(), 2);
    assert!(dead_letters(&db, "sms").await.is_empty());
    assert_eq!(events_about(&db, "notification.sent", &id).await.len(), 1);
}
