//! The emails of an account's life, from the auth function's events:
//!
//! | event | email (kind) |
//! |---|---|
//! | `user.verification_requested` | a link to confirm the address, and its token (`verify_email`) |
//! | `user.password_reset_requested` | a link to choose a new password, and its token (`password_reset`) |
//! | `user.password_changed` | a notice that the password was changed or reset (`password_changed`) |
//!
//! Data, version 1 (source `/auth`):
//!
//! ```json
//! {"version": 1, "user_id": "<id>", "email": "<address>",
//!  "token": "<sealed, associated data = the event type>", "expires_at": "<RFC 3339>"}
//! {"version": 1, "user_id": "<id>", "email": "<address>", "how": "changed" | "reset"}
//! ```
//!
//! Links start at the `public_base_url` variable (the address clients
//! reach the app at; default `http://127.0.0.1:3000`, where `bridge up`
//! listens). The reset link goes to `password_reset_url` (default
//! `{public_base_url}/reset-password`): the application's own page, which
//! reads `token` from its query and posts it with the new password to
//! `POST /auth/password-reset/confirm`.

use kit::cloudevent::CloudEvent;
use kit::config::{self, ConfigError};
use kit::domain::Email;
use kit::{ApiError, FieldError};
use serde::Deserialize;
use spinmesh_delivery::seal::{self, SEALING_KEY_VARIABLE};

use crate::outbound::EmailMessage;
use crate::templates::{self, Template};

/// Where clients reach the app: the start of every link.
pub const PUBLIC_BASE_URL: &str = "public_base_url";
/// The application's page for choosing a new password.
pub const PASSWORD_RESET_URL: &str = "password_reset_url";
/// `public_base_url` when the variable is unset.
pub const DEFAULT_PUBLIC_BASE_URL: &str = "http://127.0.0.1:3000";

/// An email an account event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEmail {
    /// The account.
    pub user_id: String,
    /// Which email.
    pub template: Template,
    /// The rendered email.
    pub message: EmailMessage,
}

/// The links' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    /// `public_base_url`, without a trailing `/`.
    pub base: String,
    /// `password_reset_url`.
    pub reset_page: String,
}

impl Links {
    /// From the variables.
    ///
    /// # Errors
    ///
    /// 500 when a variable cannot be read.
    pub fn from_config() -> Result<Self, ApiError> {
        let optional = |name| match config::get(name) {
            Ok(value) => Ok(Some(value.trim().trim_end_matches('/').to_owned())),
            Err(ConfigError::Missing(_)) => Ok(None),
            Err(err) => Err(ApiError::from(err)),
        };
        let base = optional(PUBLIC_BASE_URL)?.unwrap_or_else(|| DEFAULT_PUBLIC_BASE_URL.into());
        let reset_page =
            optional(PASSWORD_RESET_URL)?.unwrap_or_else(|| format!("{base}/reset-password"));
        Ok(Self { base, reset_page })
    }
}

/// A token-carrying event's data.
#[derive(Debug, Deserialize)]
struct TokenData {
    user_id: String,
    email: String,
    token: String,
    expires_at: String,
}

/// `user.password_changed` data.
#[derive(Debug, Deserialize)]
struct ChangedData {
    user_id: String,
    email: String,
    how: How,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum How {
    Changed,
    Reset,
}

/// The email `event` asks for; `None` for other types.
///
/// # Errors
///
/// 422 naming the field when the data lacks what the email needs, the
/// address is not one, or the token does not open with
/// `message_sealing_key` (the bridge dead-letters such an event); 500 when
/// a variable cannot be read.
pub fn email_for(event: &CloudEvent) -> Result<Option<AccountEmail>, ApiError> {
    let template = match event.kind.as_str() {
        "user.verification_requested" => Template::VerifyEmail,
        "user.password_reset_requested" => Template::PasswordReset,
        "user.password_changed" => Template::PasswordChanged,
        _ => return Ok(None),
    };
    let links = Links::from_config()?;
    if template == Template::PasswordChanged {
        let data: ChangedData = event.data_as()?;
        let to = address(&data.email)?;
        return Ok(Some(changed(data, to, &links)));
    }
    let data: TokenData = event.data_as()?;
    let to = address(&data.email)?;
    let key = config::get(SEALING_KEY_VARIABLE)?;
    let token = seal::open(&key, &event.kind, &data.token)
        .ok()
        .and_then(|plain| String::from_utf8(plain).ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "data.token",
                "does not open with message_sealing_key for this event type",
            )
        })?;
    Ok(Some(with_token(template, data, to, &token, &links)))
}

fn address(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw).map_err(|e| ApiError::Validation(vec![FieldError::new("data.email", e)]))
}

/// The verification or reset email for an opened `token`.
fn with_token(
    template: Template,
    data: TokenData,
    to: Email,
    token: &str,
    links: &Links,
) -> AccountEmail {
    let query: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
    let page = match template {
        Template::PasswordReset => links.reset_page.clone(),
        _ => format!("{}/auth/verify-email", links.base),
    };
    let separator = if page.contains('?') { '&' } else { '?' };
    let link = format!("{page}{separator}token={query}");
    let confirm_url = format!("{}/auth/password-reset/confirm", links.base);
    let rendered = templates::render(
        template,
        &[
            ("email", to.as_str()),
            ("link", &link),
            ("token", token),
            ("expires_at", &data.expires_at),
            ("confirm_url", &confirm_url),
        ],
    );
    AccountEmail {
        user_id: data.user_id,
        template,
        message: EmailMessage {
            to: to.as_str().to_owned(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
        },
    }
}

/// The notice of a changed password.
fn changed(data: ChangedData, to: Email, links: &Links) -> AccountEmail {
    let what = match data.how {
        How::Changed => "changed",
        How::Reset => "reset",
    };
    let rendered = templates::render(
        Template::PasswordChanged,
        &[
            ("email", to.as_str()),
            ("what", what),
            ("reset_page", &links.reset_page),
        ],
    );
    AccountEmail {
        user_id: data.user_id,
        template: Template::PasswordChanged,
        message: EmailMessage {
            to: to.as_str().to_owned(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links {
            base: "https://api.example.com".into(),
            reset_page: "https://app.example.com/reset?from=mail".into(),
        }
    }

    fn token_data() -> TokenData {
        TokenData {
            user_id: "u1".into(),
            email: "Ada@Example.com".into(),
            token: "sealed".into(),
            expires_at: "2026-12-04T16:00:00Z".into(),
        }
    }

    #[test]
    fn a_verification_email_links_to_the_verify_route_with_the_encoded_token() {
        let to = Email::parse("ada@example.com").unwrap();
        let email = with_token(Template::VerifyEmail, token_data(), to, "a+b/c=", &links());
        assert_eq!(email.user_id, "u1");
        assert_eq!(email.message.to, "ada@example.com");
        assert_eq!(email.message.subject, "Confirm your email address");
        let link = "https://api.example.com/auth/verify-email?token=a%2Bb%2Fc%3D";
        assert!(email.message.text.contains(link), "{}", email.message.text);
        assert!(email.message.text.contains("a+b/c="));
        assert!(email.message.html.contains(&format!("href=\"{link}\"")));
        assert!(email.message.text.contains("2026-12-04T16:00:00Z"));
    }

    #[test]
    fn a_reset_email_links_to_the_apps_page_and_names_the_confirm_route() {
        let to = Email::parse("ada@example.com").unwrap();
        let email = with_token(Template::PasswordReset, token_data(), to, "tok", &links());
        assert!(
            email
                .message
                .text
                .contains("https://app.example.com/reset?from=mail&token=tok")
        );
        assert!(
            email
                .message
                .text
                .contains("POST https://api.example.com/auth/password-reset/confirm")
        );
    }

    #[test]
    fn a_change_notice_says_how() {
        let to = Email::parse("ada@example.com").unwrap();
        let data = ChangedData {
            user_id: "u1".into(),
            email: "ada@example.com".into(),
            how: How::Reset,
        };
        let email = changed(data, to, &links());
        assert_eq!(email.message.subject, "Your password was reset");
        assert!(
            email
                .message
                .text
                .contains("https://app.example.com/reset?from=mail")
        );
    }
}
