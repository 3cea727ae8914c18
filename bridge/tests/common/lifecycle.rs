//! The account lifecycle from a client's side: one helper per route, and
//! how a test gets hold of a mailed one-time token.
//!
//! Until the e-mail itself is read ([`mailed_token`] is the one function
//! to swap for that), a token is taken where the mail is made from: the
//! event that asks for it, read from the app's outbox and unsealed with
//! the app's `message_sealing_key`, as the notifications function and the
//! bridge's email sink do.

use serde_json::{Value, json};
use spinmesh_delivery::seal;

use super::{Reply, TestApp};

/// The event carrying a new e-mail verification token.
pub const VERIFICATION_REQUESTED: &str = "user.verification_requested";
/// The event carrying a new password reset token.
pub const PASSWORD_RESET_REQUESTED: &str = "user.password_reset_requested";
/// The event announcing a changed or reset password.
pub const PASSWORD_CHANGED: &str = "user.password_changed";
/// The event announcing an address verified for the first time.
pub const EMAIL_VERIFIED: &str = "user.email_verified";

/// The token the latest `event_type` event addressed to `email` carries,
/// unsealed.
pub async fn mailed_token(app: &TestApp, event_type: &str, email: &str) -> String {
    let data = latest_event(app, event_type, email)
        .await
        .unwrap_or_else(|| panic!("no {event_type} event for {email} in the outbox"));
    let sealed = data["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{event_type} without a token: {data}"));
    let token = seal::open(&app.sealing_key, event_type, sealed)
        .unwrap_or_else(|e| panic!("the {event_type} token does not open: {e}"));
    String::from_utf8(token).expect("a token is text")
}

/// The `data` of the latest `event_type` event addressed to `email`.
pub async fn latest_event(app: &TestApp, event_type: &str, email: &str) -> Option<Value> {
    let db = app.db().await;
    db.query_opt(
        "SELECT data FROM outbox WHERE type = $1 AND data->>'email' = $2 \
         ORDER BY position DESC LIMIT 1",
        &[&event_type, &email],
    )
    .await
    .unwrap()
    .map(|row| row.get(0))
}

/// How many `event_type` events addressed to `email` the outbox holds.
pub async fn events_for(app: &TestApp, event_type: &str, email: &str) -> i64 {
    let db = app.db().await;
    db.query_one(
        "SELECT count(*) FROM outbox WHERE type = $1 AND data->>'email' = $2",
        &[&event_type, &email],
    )
    .await
    .unwrap()
    .get(0)
}

/// Makes every outstanding `purpose` token of `email`'s account expire.
pub async fn expire_tokens(app: &TestApp, purpose: &str, email: &str) {
    let db = app.db().await;
    let expired = db
        .execute(
            "UPDATE account_tokens SET expires_at = now() - interval '1 second' \
             WHERE purpose = $1 AND user_id = (SELECT id FROM users WHERE email = $2)",
            &[&purpose, &email],
        )
        .await
        .unwrap();
    assert!(expired > 0, "no {purpose} token of {email} to expire");
}

impl TestApp {
    /// `POST /auth/verify-email`.
    pub async fn verify_email(&self, token: &str) -> Reply {
        self.post_json("/auth/verify-email", &json!({ "token": token }), None)
            .await
    }

    /// `GET /auth/verify-email?token=…`, the link in the e-mail.
    pub async fn open_verification_link(&self, token: &str) -> Reply {
        let path = format!("/auth/verify-email?token={}", super::urlencode(token));
        self.get(&path, None).await
    }

    /// Opens the e-mail's link and presses the page's button, as a person
    /// does: posts the page's form (its hidden fields) to where its
    /// `action` points, relative to the page. Panics if the page has no
    /// such form.
    pub async fn press_verification_button(&self, token: &str) -> Reply {
        let page = self.open_verification_link(token).await;
        let field = |attribute: &str| {
            page.text
                .split_once(&format!("{attribute}=\""))
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(value, _)| value.to_owned())
                .unwrap_or_else(|| panic!("no {attribute} in the page: {}", page.text))
        };
        assert!(page.text.contains("<form method=\"post\""), "{}", page.text);
        let action = field("action");
        let fields = format!("token={}", super::urlencode(&field("value")));
        let link = self.url(&format!(
            "/auth/verify-email?token={}",
            super::urlencode(token)
        ));
        self.post_form(
            reqwest::Url::parse(&link).unwrap().join(&action).unwrap(),
            fields,
        )
        .await
    }

    /// Posts an `application/x-www-form-urlencoded` body, as a browser
    /// submits a form.
    pub async fn post_form(&self, url: reqwest::Url, body: String) -> Reply {
        let r = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("request sent");
        Reply::from(r).await
    }

    /// `POST /auth/verify-email/resend`.
    pub async fn resend_verification(&self, access: &str) -> Reply {
        self.send(
            "POST",
            "/auth/verify-email/resend",
            Vec::new(),
            Some(access),
        )
        .await
    }

    /// `POST /auth/password-reset`.
    pub async fn request_password_reset(&self, email: &str) -> Reply {
        self.post_json("/auth/password-reset", &json!({ "email": email }), None)
            .await
    }

    /// `POST /auth/password-reset/confirm`.
    pub async fn confirm_password_reset(&self, token: &str, new_password: &str) -> Reply {
        self.post_json(
            "/auth/password-reset/confirm",
            &json!({ "token": token, "new_password": new_password }),
            None,
        )
        .await
    }

    /// `POST /auth/password`.
    pub async fn change_password(&self, access: &str, current: &str, new: &str) -> Reply {
        self.post_json(
            "/auth/password",
            &json!({ "current_password": current, "new_password": new }),
            Some(access),
        )
        .await
    }
}
