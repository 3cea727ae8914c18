//! Bad values of every field `POST /notify` gained: 422 problems naming
//! the field, and nothing stored or sent.

use serde_json::json;

use super::{app_with, notify, retries};
use crate::common::openapi::Spec;
use crate::common::smtp::SmtpServer;

#[tokio::test]
async fn bad_channel_and_address_fields_are_422_naming_the_field() {
    let smtp = SmtpServer::start().await;
    let app = app_with(smtp.variables(), retries()).await;
    let spec = Spec::of(&app).await;
    let cases = [
        (
            json!({"user_id": "u1", "channel": "fax", "message": "m"}),
            "channel",
            "an unknown channel",
        ),
        (
            json!({"user_id": "u1", "channel": "EMAIL", "message": "m"}),
            "channel",
            "a channel in capitals",
        ),
        (
            json!({"user_id": "u1", "channel": "email", "message": "m", "to": 5}),
            "to",
            "to as a number",
        ),
        (
            json!({"user_id": "u1", "channel": "email", "message": "m", "to": "nobody"}),
            "to",
            "an email without @",
        ),
        (
            json!({"user_id": "u1", "channel": "email", "message": "m", "to": "a@b"}),
            "to",
            "an email without a domain",
        ),
        (
            json!({"user_id": "u1", "channel": "email", "message": "m", "to": ""}),
            "to",
            "an empty address",
        ),
        (
            json!({"user_id": "nobody-knows-me", "channel": "email", "message": "m"}),
            "to",
            "an email to a user without a known address",
        ),
        (
            json!({"user_id": "u1", "channel": "sms", "message": "m"}),
            "to",
            "an sms without a number",
        ),
        (
            json!({"user_id": "u1", "channel": "sms", "message": "m", "to": "14155550123"}),
            "to",
            "a number without +",
        ),
        (
            json!({"user_id": "u1", "channel": "sms", "message": "m", "to": "+1 415 555 0123"}),
            "to",
            "a number with spaces",
        ),
        (
            json!({"user_id": "u1", "channel": "sms", "message": "m", "to": "a@b.co"}),
            "to",
            "an email address for an sms",
        ),
        (
            json!({"user_id": "u1", "channel": "log", "message": "m", "to": "a@b.co"}),
            "to",
            "to on the log channel",
        ),
        (
            json!({"user_id": "u1", "channel": "webhook", "message": "m", "to": "+14155550123"}),
            "to",
            "to on the webhook channel",
        ),
    ];
    for (body, field, why) in cases {
        let r = notify(&app, body).await;
        r.assert_problem(422, why);
        spec.assert_conforms("POST", "/notify", &r);
        let errors = r.json()["errors"].clone();
        assert_eq!(errors[0]["field"], field, "{why}: {errors}");
    }
    let db = app.db().await;
    let stored: i64 = db
        .query_one("SELECT count(*) FROM notifications", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0, "nothing stored for a refused request");
    assert!(smtp.emails().is_empty(), "nothing sent");
}
