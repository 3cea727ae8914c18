//! The SMTP sink: `notification.email_requested` events become emails.
//!
//! Spin functions cannot open TCP connections, so the notifications
//! function writes a request event and the bridge sends it (see
//! [`super::ledger`] for the event, the ledger that makes the send happen
//! once in effect, and the reports). Sending goes through `lettre` with a
//! pool of connections; each message is `multipart/alternative` (plain
//! text and HTML) with `Message-ID: <notification id@sender's domain>`, so
//! a copy sent again after a crash is recognisably the same message.
//!
//! Outcomes: a permanent SMTP error (5xx: the recipient or the message is
//! refused, the credentials are wrong) is a refusal, dead-lettered at
//! once; a transient one (4xx), a refused connection, a TLS failure or a
//! timeout is retried with the delivery policy's backoff. A request whose
//! message does not open or has no valid recipient is refused.
//!
//! Configured by application variables (`[application.tool.bridge.sink.
//! <name>]` with `kind = "smtp"` names the sink; see
//! [`crate::subscription`]): `smtp_host` (empty: the sink is off),
//! `smtp_port`, `smtp_tls`, `smtp_username`, `smtp_password`,
//! `smtp_from`, and `message_sealing_key` to open the messages.

use std::time::Duration;

use anyhow::{Context, bail};
use futures::FutureExt;
use futures::future::BoxFuture;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::ledger::{self, Claim, Ledger, Request};
use super::{Sink, is_loopback};
use crate::dispatch::DeadLetter;
use crate::event::OutboxEvent;
use crate::outcome::Attempt;
use spinmesh_config::database::Database;

/// The SMTP server's host name; empty turns the sink off.
pub const SMTP_HOST: &str = "smtp_host";
/// Its port; empty means the usual one for [`SMTP_TLS`].
pub const SMTP_PORT: &str = "smtp_port";
/// `starttls` (the default), `tls` (implicit TLS) or `none` (loopback only).
pub const SMTP_TLS: &str = "smtp_tls";
/// The login, if the server wants one.
pub const SMTP_USERNAME: &str = "smtp_username";
/// Its password (secret).
pub const SMTP_PASSWORD: &str = "smtp_password";
/// The `From` mailbox, e.g. `spinmesh <no-reply@example.com>`.
pub const SMTP_FROM: &str = "smtp_from";

/// How the connection to the server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a server on the loopback interface (tests).
    None,
}

impl SmtpTls {
    fn parse(raw: &str) -> anyhow::Result<Self> {
        match raw.trim() {
            "" | "starttls" => Ok(Self::Starttls),
            "tls" => Ok(Self::Tls),
            "none" => Ok(Self::None),
            other => bail!("{SMTP_TLS} must be starttls, tls or none, not {other:?}"),
        }
    }

    /// The usual port of the mode.
    fn default_port(self) -> u16 {
        match self {
            Self::Starttls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }
}

/// Where and how the sink sends.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// Server host name (verified against its certificate under TLS).
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Connection security.
    pub tls: SmtpTls,
    /// Login and password, when the server wants them.
    pub credentials: Option<(String, String)>,
    /// The `From` mailbox, checked to parse.
    pub from: String,
    /// Opens the request events' messages.
    pub sealing_key: String,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SmtpConfig {
    /// The configuration from the application variables `variable`
    /// resolves; `None` when `smtp_host` is unset or empty.
    ///
    /// # Errors
    /// When a value is invalid: a port that is not a number, an unknown
    /// TLS mode, `none` for a host that is not loopback, a username without
    /// a password, a `From` that is not a mailbox, or no sealing key.
    pub fn from_variables(
        variable: &dyn Fn(&str) -> anyhow::Result<Option<String>>,
    ) -> anyhow::Result<Option<Self>> {
        let text = |name: &str| -> anyhow::Result<String> {
            Ok(variable(name)?.unwrap_or_default().trim().to_owned())
        };
        let host = text(SMTP_HOST)?;
        if host.is_empty() {
            return Ok(None);
        }
        let tls = SmtpTls::parse(&text(SMTP_TLS)?)?;
        if tls == SmtpTls::None && !is_loopback(&host) {
            bail!("{SMTP_TLS}=none is only for a server on loopback, not {host:?}");
        }
        let port = match text(SMTP_PORT)?.as_str() {
            "" => tls.default_port(),
            raw => raw
                .parse()
                .with_context(|| format!("{SMTP_PORT} {raw:?} is not a port number"))?,
        };
        let password = variable(SMTP_PASSWORD)?.filter(|p| !p.is_empty());
        let credentials = match (text(SMTP_USERNAME)?, password) {
            (user, _) if user.is_empty() => None,
            (_, None) => bail!("{SMTP_USERNAME} is set but {SMTP_PASSWORD} is not"),
            (user, Some(password)) => Some((user, password)),
        };
        let from = text(SMTP_FROM)?;
        from.parse::<Mailbox>()
            .with_context(|| format!("{SMTP_FROM} {from:?} is not a mailbox"))?;
        let sealing_key = variable(spinmesh_delivery::seal::SEALING_KEY_VARIABLE)?
            .filter(|k| !k.is_empty())
            .with_context(|| {
                format!(
                    "{} is not set: the sink cannot open the messages",
                    spinmesh_delivery::seal::SEALING_KEY_VARIABLE
                )
            })?;
        Ok(Some(Self {
            host,
            port,
            tls,
            credentials,
            from,
            sealing_key,
        }))
    }
}

/// What a request event's sealed message holds.
#[derive(Debug, Deserialize)]
struct EmailMessage {
    to: String,
    subject: String,
    text: String,
    html: String,
}

/// Sends requested emails through one SMTP server.
pub struct SmtpSink {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    ledger: Ledger,
    timeout: Duration,
}

impl SmtpSink {
    /// The sink named `name` (its reports' source is `/bridge/<name>`);
    /// nothing connects until the first email.
    ///
    /// # Errors
    /// When the TLS settings cannot be built.
    pub fn new(
        name: &str,
        config: &SmtpConfig,
        database: &Database,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .timeout(Some(timeout));
        let builder = match config.tls {
            SmtpTls::None => builder,
            mode => {
                let parameters = TlsParameters::new(config.host.clone())
                    .context("setting up TLS to the SMTP server")?;
                builder.tls(match mode {
                    SmtpTls::Tls => Tls::Wrapper(parameters),
                    _ => Tls::Required(parameters),
                })
            }
        };
        let builder = match &config.credentials {
            Some((user, password)) => {
                builder.credentials(Credentials::new(user.clone(), password.clone()))
            }
            None => builder,
        };
        Ok(Self {
            transport: builder.build(),
            from: config.from.parse().context(SMTP_FROM)?,
            ledger: Ledger::new(database, name, "email", &config.sealing_key),
            timeout,
        })
    }

    async fn deliver_one(&self, event: &OutboxEvent) -> Attempt {
        let request = match self.ledger.claim::<EmailMessage>(event).await {
            Claim::Send(request) => request,
            Claim::Settled(attempt) => return attempt,
        };
        let message = match self.message(&request) {
            Ok(message) => message,
            Err(err) => return Attempt::refused(format!("{err:#}")),
        };
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Err(_) => return Attempt::failed(format!("SMTP: no answer within {:?}", self.timeout)),
            Ok(Err(err)) => return outcome_of(&err),
            Ok(Ok(_)) => {}
        }
        match self
            .ledger
            .record_sent(event, request.notification_id)
            .await
        {
            Ok(()) => Attempt::delivered(),
            Err(err) => Attempt::failed(format!("sent, but not recorded: {err:#}")),
        }
    }

    /// The email: `multipart/alternative`, text then HTML, its
    /// `Message-ID` made from the notification id.
    fn message(&self, request: &Request<EmailMessage>) -> anyhow::Result<Message> {
        let email = &request.message;
        let to: Mailbox = email
            .to
            .parse()
            .context("the recipient is not an email address")?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(format!(
                "<{}@{}>",
                request.notification_id,
                self.from.email.domain()
            )))
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .context("building the email")
    }
}

impl Sink for SmtpSink {
    fn deliver<'a>(&'a self, events: &'a [OutboxEvent]) -> BoxFuture<'a, Attempt> {
        ledger::in_order(events, |event| self.deliver_one(event)).boxed()
    }

    fn dead_lettered<'a>(
        &'a self,
        event: &'a OutboxEvent,
        why: &'a DeadLetter,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.ledger.record_failed(event, why).boxed()
    }
}

/// What a failed send means: 5xx refused, anything else retried. The
/// server's text is kept (it says why), never the message.
fn outcome_of(err: &lettre::transport::smtp::Error) -> Attempt {
    if err.is_permanent() {
        Attempt::refused(format!("SMTP refused the email: {err}"))
    } else {
        Attempt::failed(format!("SMTP: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Option<SmtpConfig>> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SmtpConfig::from_variables(&|name| Ok(vars.get(name).cloned()))
    }

    const BASE: &[(&str, &str)] = &[
        ("smtp_host", "smtp.example.com"),
        ("smtp_from", "spinmesh <no-reply@example.com>"),
        ("message_sealing_key", "k"),
    ];

    #[test]
    fn an_empty_host_turns_the_sink_off() {
        assert_eq!(config(&[]).unwrap(), None);
        assert_eq!(config(&[("smtp_host", " ")]).unwrap(), None);
    }

    #[test]
    fn ports_default_by_tls_mode() {
        let port = |tls: &str| {
            let mut vars = BASE.to_vec();
            vars.push(("smtp_tls", tls));
            config(&vars).unwrap().unwrap().port
        };
        assert_eq!(port(""), 587);
        assert_eq!(port("tls"), 465);
        let mut vars = BASE.to_vec();
        vars.extend([("smtp_port", "2525"), ("smtp_host", "127.0.0.1")]);
        vars.push(("smtp_tls", "none"));
        let loopback = config(&vars).unwrap().unwrap();
        assert_eq!((loopback.port, loopback.tls), (2525, SmtpTls::None));
    }

    #[test]
    fn bad_settings_are_refused_with_their_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("smtp_port", "smtp")], "smtp_port"),
            (&[("smtp_tls", "ssl")], "smtp_tls"),
            (&[("smtp_tls", "none")], "loopback"),
            (&[("smtp_username", "u")], "smtp_password"),
            (&[("smtp_from", "not a mailbox")], "smtp_from"),
            (&[("message_sealing_key", "")], "message_sealing_key"),
        ];
        for (extra, expected) in cases {
            let mut vars = BASE.to_vec();
            vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
            vars.extend_from_slice(extra);
            let err = format!("{:#}", config(&vars).unwrap_err());
            assert!(err.contains(expected), "{extra:?}: {err}");
        }
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let mut vars = BASE.to_vec();
        vars.extend([("smtp_username", "mailer"), ("smtp_password", "hunter2")]);
        let shown = format!("{:?}", config(&vars).unwrap().unwrap());
        assert!(
            shown.contains("mailer") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(!shown.contains("sealing"), "{shown}");
    }
}
