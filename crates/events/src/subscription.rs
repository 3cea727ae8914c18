//! Event subscriptions, declared in `spin.toml` under Spin's tool tables:
//!
//! ```toml
//! [component.analytics.tool.bridge]
//! subscribe = ["user.*", "order.paid"]   # event types; `*` alone matches all
//! route = "/analytics/events"            # where the CloudEvent is POSTed
//! max_attempts = 5                       # then the event is dead-lettered
//! batch = 100                            # optional: up to 100 events per POST
//! tick_every_secs = 30                   # optional: the bridge's clock (see `clock`)
//! ```
//!
//! With `batch` above 1 the function accepts CloudEvents batch mode
//! (`application/cloudevents-batch+json`, a JSON array of structured
//! events) and the bridge sends whatever is waiting, up to that many, in
//! one request. Each subject's events stay in order within and across
//! batches.
//!
//! Sinks that are not functions are declared at the application level,
//! one table each (see [`crate::sink`]):
//!
//! ```toml
//! [application.tool.bridge.sink.tracking]
//! kind = "mongo"
//! subscribe = ["*"]
//! url_variable = "mongo_url"     # an application variable; unset or empty: the sink is off
//! database = "spinmesh"
//! collection = "tracking"
//! batch = 500                    # documents per insert_many (default 100)
//! max_attempts = 10              # then dead-lettered, like any delivery
//!
//! [application.tool.bridge.sink.email]
//! kind = "smtp"                  # on when the `smtp_host` variable is set
//! subscribe = ["notification.email_requested"]
//! max_attempts = 12
//!
//! [application.tool.bridge.sink.sms]
//! kind = "sms"                   # on when the `sms_gateway_url` variable is set
//! subscribe = ["notification.sms_requested"]
//! ```
//!
//! The email and SMS sinks read their settings from fixed application
//! variables (see [`crate::sink::smtp`] and [`crate::sink::sms`]).
//!
//! A sink's subscription is named `sink.<name>` (its cursor, queue and
//! consumer group), which no component id can be.
//!
//! Spin ignores `tool` tables, so the manifest still loads under `spin up`.

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::sink::mongo::MongoConfig;
use crate::sink::sms::SmsConfig;
use crate::sink::smtp::SmtpConfig;
use spinmesh_config::manifest::Manifest;

/// `[component.<id>.tool.bridge]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BridgeTable {
    subscribe: Vec<String>,
    route: String,
    #[serde(default = "default_attempts")]
    max_attempts: u32,
    #[serde(default = "default_batch")]
    batch: usize,
    #[serde(default)]
    tick_every_secs: Option<u64>,
}

fn default_batch() -> usize {
    1
}

/// The largest `batch` accepted: what receivers accept (the contract).
pub use spinmesh_delivery::MAX_BATCH;

fn default_attempts() -> u32 {
    5
}

/// One component's subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscribing component; also the subscription's name (cursor,
    /// consumer group, queue).
    pub name: String,
    /// Event type patterns.
    pub patterns: Vec<TypePattern>,
    /// Where its events go.
    pub destination: Destination,
    /// Attempts before dead-lettering (at least 1).
    pub max_attempts: u32,
    /// Events per delivery (1: one CloudEvent per request, binary mode).
    pub batch: usize,
    /// How often the bridge's clock delivers a `bridge.tick` event to the
    /// route, if at all.
    pub tick: Option<std::time::Duration>,
}

/// Where a subscription's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// POSTed to this route of the subscribing component.
    Function {
        /// Path the event is delivered to.
        route: String,
    },
    /// Stored in a MongoDB collection.
    Mongo(MongoConfig),
    /// Requested emails, sent through an SMTP server.
    Smtp(SmtpConfig),
    /// Requested SMS, posted to an SMS gateway.
    Sms(SmsConfig),
}

/// An event type pattern: exact, a `prefix.*` family, or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypePattern {
    /// Every type.
    All,
    /// Types starting with this prefix followed by a dot.
    Family(String),
    /// Exactly this type.
    Exact(String),
}

impl TypePattern {
    fn parse(s: &str) -> anyhow::Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            bail!("empty event type pattern");
        }
        Ok(match s {
            "*" => Self::All,
            _ => match s.strip_suffix(".*") {
                Some(prefix) if !prefix.contains('*') => Self::Family(prefix.to_string()),
                _ if s.contains('*') => {
                    bail!("pattern {s:?}: `*` may only be alone or end `prefix.*`")
                }
                _ => Self::Exact(s.to_string()),
            },
        })
    }

    /// Whether an event of type `ty` matches.
    pub fn matches(&self, ty: &str) -> bool {
        match self {
            Self::All => true,
            Self::Exact(t) => t == ty,
            Self::Family(prefix) => ty
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('.')),
        }
    }

    /// The pattern as an AMQP topic binding key (`*`-words become `#`).
    pub fn binding_key(&self) -> String {
        match self {
            Self::All => "#".to_string(),
            Self::Family(prefix) => format!("{prefix}.#"),
            Self::Exact(t) => t.clone(),
        }
    }
}

impl Subscription {
    /// The route events are POSTed to, for a function's subscription.
    pub fn route(&self) -> Option<&str> {
        match &self.destination {
            Destination::Function { route } => Some(route),
            Destination::Mongo(_) | Destination::Smtp(_) | Destination::Sms(_) => None,
        }
    }

    /// Whether this subscription wants events of type `ty`.
    pub fn wants(&self, ty: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(ty))
    }

    /// How many ordered lanes a broker consumer runs for this subscription
    /// when `concurrency` events may be in delivery at once. One event per
    /// request: `concurrency` lanes. Batches: each lane is one invocation
    /// at a time, and a lane's batch holds only what queued on that lane,
    /// so `concurrency` lanes would split a moderate stream into batches of
    /// one; full batches on `concurrency / batch` lanes keep about as many
    /// events in flight, and at least two lanes let one batch's invocation
    /// overlap the next.
    pub fn lanes(&self, concurrency: usize) -> usize {
        let concurrency = concurrency.max(1);
        if self.batch <= 1 {
            return concurrency;
        }
        (concurrency / self.batch).clamp(2, concurrency.max(2))
    }

    /// How many events a source holds in flight for this subscription
    /// (an embedded outbox read, RabbitMQ's prefetch, Kafka's messages
    /// unanswered): `configured`, or a full batch for each of its
    /// [`Self::lanes`] when that is more. A sink taking 1000 events a call
    /// would otherwise get calls of a few hundred, and its server pays per
    /// call.
    pub fn in_flight(&self, configured: usize, concurrency: usize) -> usize {
        let fill = self.batch.saturating_mul(self.lanes(concurrency));
        configured.max(fill).max(1)
    }
}

/// Every subscription declared in the manifest, in component-id order.
///
/// # Errors
/// When a `tool.bridge` table is malformed.
pub fn from_manifest(manifest: &Manifest) -> anyhow::Result<Vec<Subscription>> {
    let mut out = Vec::new();
    for (id, component) in &manifest.doc.component {
        let Some(table) = component.tool.get("bridge") else {
            continue;
        };
        let table: BridgeTable = table
            .clone()
            .try_into()
            .with_context(|| format!("[component.{id}.tool.bridge]"))?;
        if table.subscribe.is_empty() {
            bail!("[component.{id}.tool.bridge]: `subscribe` lists no event types");
        }
        if !(1..=MAX_BATCH).contains(&table.batch) {
            bail!("[component.{id}.tool.bridge]: batch must be between 1 and {MAX_BATCH}");
        }
        if !table.route.starts_with('/') {
            bail!("[component.{id}.tool.bridge]: route must start with '/'");
        }
        let patterns = table
            .subscribe
            .iter()
            .map(|p| TypePattern::parse(p))
            .collect::<anyhow::Result<_>>()
            .with_context(|| format!("[component.{id}.tool.bridge]"))?;
        if table.tick_every_secs == Some(0) {
            bail!("[component.{id}.tool.bridge]: tick_every_secs must be at least 1");
        }
        out.push(Subscription {
            name: id.clone(),
            patterns,
            destination: Destination::Function { route: table.route },
            max_attempts: table.max_attempts.max(1),
            batch: table.batch,
            tick: table.tick_every_secs.map(std::time::Duration::from_secs),
        });
    }
    Ok(out)
}

/// The fields every `[application.tool.bridge.sink.<name>]` has.
struct SinkCommon {
    subscribe: Vec<String>,
    batch: usize,
    max_attempts: u32,
}

/// A `kind = "mongo"` sink table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MongoTable {
    #[serde(rename = "kind")]
    _kind: String,
    subscribe: Vec<String>,
    #[serde(default = "default_url_variable")]
    url_variable: String,
    database: String,
    collection: String,
    #[serde(default = "default_sink_batch")]
    batch: usize,
    #[serde(default = "default_attempts")]
    max_attempts: u32,
}

/// A `kind = "smtp"` or `kind = "sms"` sink table as written: the
/// connection comes from fixed application variables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyTable {
    #[serde(rename = "kind")]
    _kind: String,
    subscribe: Vec<String>,
    /// Default 1: each message is its own send, and the subject lanes
    /// (one per notification) already send in parallel.
    #[serde(default = "default_batch")]
    batch: usize,
    #[serde(default = "default_attempts")]
    max_attempts: u32,
}

fn default_url_variable() -> String {
    "mongo_url".to_string()
}

fn default_sink_batch() -> usize {
    100
}

/// The name of sink `name`'s subscription.
pub fn sink_subscription_name(name: &str) -> String {
    format!("sink.{name}")
}

/// The largest `batch` a sink accepts (MongoDB splits bigger writes
/// itself, but a bigger batch only delays acknowledgement).
pub const MAX_SINK_BATCH: usize = 10_000;

/// Every sink declared in the manifest whose connection is configured, as
/// subscriptions. `variable` resolves an application variable (overrides,
/// then `SPIN_VARIABLE_*`, then the default); a sink whose switching
/// variable (a mongo sink's URL variable, `smtp_host`, `sms_gateway_url`)
/// is unset or empty is off, and the bridge says so.
///
/// # Errors
/// When a sink table is malformed, names an unknown kind, or a switched-on
/// sink's settings are invalid.
pub fn sinks_from_manifest(
    manifest: &Manifest,
    variable: impl Fn(&str) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<Vec<Subscription>> {
    let Some(sinks) = manifest
        .doc
        .application
        .other
        .get("tool")
        .and_then(|t| t.get("bridge"))
        .and_then(|b| b.get("sink"))
    else {
        return Ok(Vec::new());
    };
    let sinks = sinks
        .as_table()
        .context("[application.tool.bridge.sink] must be a table of sinks")?;
    let mut out = Vec::new();
    for (name, table) in sinks {
        let at = format!("[application.tool.bridge.sink.{name}]");
        let kind = table
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        let (common, destination) = match kind {
            "mongo" => {
                let table: MongoTable = table.clone().try_into().with_context(|| at.clone())?;
                if table.database.is_empty() || table.collection.is_empty() {
                    bail!("{at}: database and collection must not be empty");
                }
                let url = variable(&table.url_variable)
                    .with_context(|| format!("{at}: variable {}", table.url_variable))?
                    .filter(|url| !url.trim().is_empty());
                let common = SinkCommon {
                    subscribe: table.subscribe,
                    batch: table.batch,
                    max_attempts: table.max_attempts,
                };
                let destination = url.map(|url| {
                    Destination::Mongo(MongoConfig {
                        url,
                        database: table.database,
                        collection: table.collection,
                    })
                });
                (common, off_unless(destination, name, &table.url_variable))
            }
            "smtp" | "sms" => {
                let table: NotifyTable = table.clone().try_into().with_context(|| at.clone())?;
                let common = SinkCommon {
                    subscribe: table.subscribe,
                    batch: table.batch,
                    max_attempts: table.max_attempts,
                };
                let destination = if kind == "smtp" {
                    SmtpConfig::from_variables(&variable)
                        .with_context(|| at.clone())?
                        .map(Destination::Smtp)
                } else {
                    SmsConfig::from_variables(&variable)
                        .with_context(|| at.clone())?
                        .map(Destination::Sms)
                };
                let switch = if kind == "smtp" {
                    crate::sink::smtp::SMTP_HOST
                } else {
                    crate::sink::sms::SMS_GATEWAY_URL
                };
                (common, off_unless(destination, name, switch))
            }
            other => {
                bail!("{at}: unknown kind {other:?} (supported: \"mongo\", \"smtp\", \"sms\")")
            }
        };
        if common.subscribe.is_empty() {
            bail!("{at}: `subscribe` lists no event types");
        }
        if !(1..=MAX_SINK_BATCH).contains(&common.batch) {
            bail!("{at}: batch must be between 1 and {MAX_SINK_BATCH}");
        }
        let patterns = common
            .subscribe
            .iter()
            .map(|p| TypePattern::parse(p))
            .collect::<anyhow::Result<_>>()
            .with_context(|| at.clone())?;
        let Some(destination) = destination else {
            continue;
        };
        out.push(Subscription {
            name: sink_subscription_name(name),
            patterns,
            destination,
            max_attempts: common.max_attempts.max(1),
            batch: common.batch,
            tick: None,
        });
    }
    Ok(out)
}

/// `destination`, or a warning that sink `name` is off because
/// `variable` is unset or empty.
fn off_unless(destination: Option<Destination>, name: &str, variable: &str) -> Option<Destination> {
    if destination.is_none() {
        tracing::warn!(
            sink = %name,
            variable = %variable,
            "sink is off: its variable is unset or empty"
        );
    }
    destination
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function's subscription taking `batch` events a call.
    fn sub(batch: usize) -> Subscription {
        Subscription {
            name: "s".into(),
            patterns: vec![TypePattern::All],
            destination: Destination::Function { route: "/e".into() },
            max_attempts: 5,
            batch,
            tick: None,
        }
    }

    #[test]
    fn batching_subscriptions_get_few_lanes() {
        assert_eq!(sub(1).lanes(32), 32);
        assert_eq!(sub(100).lanes(32), 2);
        assert_eq!(sub(4).lanes(32), 8);
        assert_eq!(sub(1).lanes(0), 1);
    }

    #[test]
    fn a_source_holds_a_full_batch_for_every_lane() {
        assert_eq!(
            sub(1).in_flight(512, 32),
            512,
            "single events: as configured"
        );
        assert_eq!(sub(100).in_flight(512, 32), 512, "batches it already fills");
        assert_eq!(sub(1000).in_flight(512, 32), 2000, "two lanes of 1000");
        assert_eq!(sub(1000).in_flight(64, 32), 2000, "a small prefetch too");
        assert_eq!(
            sub(usize::MAX).in_flight(512, 32),
            usize::MAX,
            "no overflow"
        );
        assert_eq!(sub(1).in_flight(0, 0), 1, "never nothing");
    }

    #[test]
    fn patterns_match_types() {
        let all = TypePattern::parse("*").unwrap();
        let family = TypePattern::parse("user.*").unwrap();
        let exact = TypePattern::parse("order.paid").unwrap();
        assert!(all.matches("anything"));
        assert!(family.matches("user.registered"));
        assert!(!family.matches("users.registered"));
        assert!(!family.matches("user"));
        assert!(exact.matches("order.paid"));
        assert!(!exact.matches("order.paid.v2"));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in ["", "u*er", "*.registered", "user.*.x"] {
            assert!(TypePattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn binding_keys_follow_amqp_topic_syntax() {
        assert_eq!(TypePattern::parse("*").unwrap().binding_key(), "#");
        assert_eq!(
            TypePattern::parse("user.*").unwrap().binding_key(),
            "user.#"
        );
        assert_eq!(
            TypePattern::parse("order.paid").unwrap().binding_key(),
            "order.paid"
        );
    }

    #[test]
    fn the_project_manifest_ticks_the_orders_subscription_only() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
        let manifest = Manifest::load(&path).unwrap();
        let subs = from_manifest(&manifest).unwrap();
        let ticking: Vec<_> = subs
            .iter()
            .filter_map(|s| s.tick.map(|t| (s.name.as_str(), t)))
            .collect();
        assert_eq!(ticking, [("orders", std::time::Duration::from_secs(30))]);
    }

    #[test]
    fn a_zero_tick_is_refused() {
        let dir = std::env::temp_dir().join(format!("tick-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spin.toml");
        std::fs::write(
            &path,
            "spin_manifest_version = 2\n[application]\nname='x'\n[[trigger.http]]\nroute='/a/...'\ncomponent='a'\n\
             [component.a]\nsource='a.wasm'\n[component.a.tool.bridge]\nsubscribe=['x.y']\nroute='/a/events'\ntick_every_secs=0\n",
        )
        .unwrap();
        let manifest = Manifest::load(&path).unwrap();
        let err = from_manifest(&manifest).unwrap_err().to_string();
        assert!(err.contains("tick_every_secs"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_project_manifest_ships_a_tracking_sink_that_is_off_without_a_url() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
        let manifest = Manifest::load(&path).unwrap();
        assert!(
            sinks_from_manifest(&manifest, |_| Ok(None))
                .unwrap()
                .is_empty()
        );
        assert!(
            sinks_from_manifest(&manifest, |_| Ok(Some(" ".into())))
                .unwrap()
                .is_empty()
        );
        let sinks = sinks_from_manifest(&manifest, |name| {
            Ok((name == "mongo_url").then(|| "mongodb://127.0.0.1:27017".into()))
        })
        .unwrap();
        assert_eq!(sinks.len(), 1);
        let sink = &sinks[0];
        assert_eq!(sink.name, "sink.tracking");
        assert!(sink.wants("user.registered") && sink.wants("order.paid"));
        assert_eq!(
            sink.destination,
            Destination::Mongo(MongoConfig {
                url: "mongodb://127.0.0.1:27017".into(),
                database: "spinmesh".into(),
                collection: "tracking".into(),
            })
        );
        assert_eq!(sink.route(), None);
    }

    #[test]
    fn malformed_sinks_are_refused() {
        let cases = [
            (
                "kind='kafka'\nsubscribe=['*']\ndatabase='d'\ncollection='c'",
                "unknown kind",
            ),
            (
                "kind='mongo'\nsubscribe=[]\ndatabase='d'\ncollection='c'",
                "subscribe",
            ),
            (
                "kind='mongo'\nsubscribe=['*']\ndatabase=''\ncollection='c'",
                "empty",
            ),
            (
                "kind='mongo'\nsubscribe=['*']\ndatabase='d'\ncollection='c'\nbatch=0",
                "batch",
            ),
            (
                "kind='mongo'\nsubscribe=['*']\ndatabase='d'\ncollection='c'\nuri='x'",
                "uri",
            ),
        ];
        for (table, expected) in cases {
            let dir = std::env::temp_dir().join(format!("sink-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("spin.toml");
            std::fs::write(
                &path,
                format!(
                    "spin_manifest_version = 2\n[application]\nname='x'\n\
                     [application.tool.bridge.sink.t]\n{table}\n"
                ),
            )
            .unwrap();
            let manifest = Manifest::load(&path).unwrap();
            let err =
                sinks_from_manifest(&manifest, |_| Ok(Some("mongodb://h".into()))).unwrap_err();
            assert!(format!("{err:#}").contains(expected), "{table}: {err:#}");
            std::fs::remove_dir_all(dir).ok();
        }
    }

    #[test]
    fn the_project_manifest_ships_email_and_sms_sinks_switched_by_their_variables() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
        let manifest = Manifest::load(&path).unwrap();
        // The switches and the key set; everything else the manifest's defaults.
        let vars = |name: &str| -> anyhow::Result<Option<String>> {
            Ok(match name {
                "smtp_host" => Some("smtp.example.com".into()),
                "sms_gateway_url" => Some("https://sms.example.com/send".into()),
                "message_sealing_key" => Some("k".into()),
                _ => manifest
                    .doc
                    .variables
                    .get(name)
                    .and_then(|d| d.default.clone()),
            })
        };
        let sinks = sinks_from_manifest(&manifest, vars).unwrap();
        let email = sinks.iter().find(|s| s.name == "sink.email").unwrap();
        assert!(
            email.wants("notification.email_requested")
                && !email.wants("notification.sms_requested")
        );
        assert_eq!((email.batch, email.max_attempts), (1, 12));
        let Destination::Smtp(smtp) = &email.destination else {
            panic!("{email:?}");
        };
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.tls),
            (
                "smtp.example.com",
                587,
                crate::sink::smtp::SmtpTls::Starttls
            )
        );
        assert_eq!(smtp.credentials, None);
        assert_eq!(smtp.from, "spinmesh <no-reply@spinmesh.localhost>");
        let sms = sinks.iter().find(|s| s.name == "sink.sms").unwrap();
        assert!(sms.wants("notification.sms_requested"));
        assert!(
            matches!(&sms.destination, Destination::Sms(c) if c.url == "https://sms.example.com/send" && c.token.is_none())
        );
        assert_eq!(email.route(), None);
    }

    #[test]
    fn an_email_sink_with_bad_settings_names_its_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
        let manifest = Manifest::load(&path).unwrap();
        let err = sinks_from_manifest(&manifest, |name| {
            Ok(match name {
                "smtp_host" => Some("smtp.example.com".into()),
                "smtp_tls" => Some("plaintext".into()),
                _ => None,
            })
        })
        .unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("[application.tool.bridge.sink.email]") && err.contains("smtp_tls"),
            "{err}"
        );
    }
}
