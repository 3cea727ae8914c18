//! Email bodies from the templates in `functions/notifications/templates/`.
//!
//! Each kind of email has a plain-text template (`<kind>.txt`, whose first
//! line is `Subject: ...`, then an empty line, then the body) and an HTML
//! one (`<kind>.html`). Both hold `{{name}}` placeholders and nothing
//! else: no conditions or loops, so a few lines of substitution do what a
//! template engine would, and the component stays small. Values are
//! inserted as they are into the text and the subject, and HTML-escaped
//! into the HTML. The templates are compiled in (`include_str!`), so a
//! change to one is a rebuild of the component.

/// The kinds of email, one pair of templates each; also the stored `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// A `POST /notify` message: `message`.
    Message,
    /// Confirm an address: `email`, `link`, `token`, `expires_at`.
    VerifyEmail,
    /// Reset a forgotten password: `email`, `link`, `token`,
    /// `expires_at`, `confirm_url`.
    PasswordReset,
    /// The password was changed or reset: `email`, `what`, `reset_page`.
    PasswordChanged,
}

impl Template {
    /// The stored `kind` (and the templates' file name).
    pub fn kind(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
            Self::PasswordChanged => "password_changed",
        }
    }

    /// The text and HTML templates.
    fn sources(self) -> (&'static str, &'static str) {
        match self {
            Self::Message => (
                include_str!("../templates/message.txt"),
                include_str!("../templates/message.html"),
            ),
            Self::VerifyEmail => (
                include_str!("../templates/verify_email.txt"),
                include_str!("../templates/verify_email.html"),
            ),
            Self::PasswordReset => (
                include_str!("../templates/password_reset.txt"),
                include_str!("../templates/password_reset.html"),
            ),
            Self::PasswordChanged => (
                include_str!("../templates/password_changed.txt"),
                include_str!("../templates/password_changed.html"),
            ),
        }
    }
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The `Subject` header.
    pub subject: String,
    /// The `text/plain` part.
    pub text: String,
    /// The `text/html` part.
    pub html: String,
}

/// Renders `template` with `values` (`(name, value)` pairs).
pub fn render(template: Template, values: &[(&str, &str)]) -> Rendered {
    let (text, html) = template.sources();
    let text = fill(text, values, |v| v.to_owned());
    let (subject, body) = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("Subject:") => (
            first["Subject:".len()..].trim().to_owned(),
            rest.trim_start(),
        ),
        _ => (String::new(), text.as_str()),
    };
    Rendered {
        subject,
        text: body.to_owned(),
        html: fill(html, values, kit::html::escape),
    }
}

/// `source` with each `{{name}}` replaced by `escape(value)`; a
/// placeholder without a value, or an unclosed `{{`, stays as it is (a
/// test keeps either from reaching a template).
fn fill(source: &str, values: &[(&str, &str)], escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(source.len() + 256);
    let mut rest = source;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => out.push_str(&escape(value)),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [(Template, &[&str]); 4] = [
        (Template::Message, &["message"]),
        (
            Template::VerifyEmail,
            &["email", "link", "token", "expires_at"],
        ),
        (
            Template::PasswordReset,
            &["email", "link", "token", "expires_at", "confirm_url"],
        ),
        (Template::PasswordChanged, &["email", "what", "reset_page"]),
    ];

    #[test]
    fn every_template_has_a_subject_and_uses_exactly_its_values() {
        for (template, names) in ALL {
            let values: Vec<(&str, &str)> = names.iter().map(|n| (*n, "VALUE")).collect();
            let rendered = render(template, &values);
            assert!(!rendered.subject.is_empty(), "{template:?}");
            for part in [&rendered.subject, &rendered.text, &rendered.html] {
                assert!(!part.contains("{{"), "{template:?}: unfilled in {part}");
            }
            let (text, html) = template.sources();
            for name in names.iter() {
                let placeholder = format!("{{{{{name}}}}}");
                assert!(
                    text.contains(&placeholder) || html.contains(&placeholder),
                    "{template:?} never uses {name}"
                );
            }
        }
    }

    #[test]
    fn values_are_escaped_in_html_only() {
        let evil = "<script>alert('x')</script> & \"y\"";
        let rendered = render(Template::Message, &[("message", evil)]);
        assert!(rendered.text.contains(evil));
        assert!(!rendered.html.contains("<script>"), "{}", rendered.html);
        assert!(
            rendered
                .html
                .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;")
        );
    }

    #[test]
    fn links_keep_their_query_in_text_and_are_attribute_safe_in_html() {
        let link = "https://app.example.com/reset?token=a%2Bb&x=1";
        let rendered = render(
            Template::PasswordReset,
            &[
                ("email", "a@b.co"),
                ("link", link),
                ("token", "a+b"),
                ("expires_at", "2026-12-04T16:00:00Z"),
                (
                    "confirm_url",
                    "https://api.example.com/auth/password-reset/confirm",
                ),
            ],
        );
        assert_eq!(rendered.subject, "Reset your password");
        assert!(rendered.text.contains(link));
        assert!(
            rendered
                .html
                .contains("href=\"https://app.example.com/reset?token=a%2Bb&amp;x=1\"")
        );
    }

    #[test]
    fn unknown_and_unclosed_placeholders_stay() {
        assert_eq!(
            fill("a {{x}} {{y}} b", &[("x", "1")], str::to_owned),
            "a 1 {{y}} b"
        );
        assert_eq!(fill("a {{x}} {{x", &[("x", "1")], str::to_owned), "a 1 {{x");
    }
}
