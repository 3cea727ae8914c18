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
//! kind = "mongo"                 # the only kind so far
//! subscribe = ["*"]
//! url_variable = "mongo_url"     # an application variable; unset or empty: the sink is off
//! database = "spinmesh"
//! collection = "tracking"
//! batch = 500                    # documents per insert_many (default 100)
//! max_attempts = 10              # then dead-lettered, like any delivery
//! ```
//!
//! A sink's subscription is named `sink.<name>` (its cursor, queue and
//! consumer group), which no component id can be.
//!
//! Spin ignores `tool` tables, so the manifest still loads under `spin up`.

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::sink::mongo::MongoConfig;
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
            Destination::Mongo(_) => None,
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

/// `[application.tool.bridge.sink.<name>]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkTable {
    kind: String,
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
/// then `SPIN_VARIABLE_*`, then the default); a sink whose URL variable is
/// unset or empty is off, and the bridge says so.
///
/// # Errors
/// When a sink table is malformed or names an unknown kind.
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
        let table: SinkTable = table.clone().try_into().with_context(|| at.clone())?;
        if table.kind != "mongo" {
            bail!("{at}: unknown kind {:?} (supported: \"mongo\")", table.kind);
        }
        if table.subscribe.is_empty() {
            bail!("{at}: `subscribe` lists no event types");
        }
        if !(1..=MAX_SINK_BATCH).contains(&table.batch) {
            bail!("{at}: batch must be between 1 and {MAX_SINK_BATCH}");
        }
        if table.database.is_empty() || table.collection.is_empty() {
            bail!("{at}: database and collection must not be empty");
        }
        let patterns = table
            .subscribe
            .iter()
            .map(|p| TypePattern::parse(p))
            .collect::<anyhow::Result<_>>()
            .with_context(|| at.clone())?;
        let url = variable(&table.url_variable)
            .with_context(|| format!("{at}: variable {}", table.url_variable))?
            .filter(|url| !url.trim().is_empty());
        let Some(url) = url else {
            tracing::warn!(
                sink = %name,
                variable = %table.url_variable,
                "sink is off: its URL variable is unset or empty"
            );
            continue;
        };
        out.push(Subscription {
            name: sink_subscription_name(name),
            patterns,
            destination: Destination::Mongo(MongoConfig {
                url,
                database: table.database,
                collection: table.collection,
            }),
            max_attempts: table.max_attempts.max(1),
            batch: table.batch,
            tick: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batching_subscriptions_get_few_lanes() {
        let sub = |batch| Subscription {
            name: "s".into(),
            patterns: vec![TypePattern::All],
            destination: Destination::Function { route: "/e".into() },
            max_attempts: 5,
            batch,
            tick: None,
        };
        assert_eq!(sub(1).lanes(32), 32);
        assert_eq!(sub(100).lanes(32), 2);
        assert_eq!(sub(4).lanes(32), 8);
        assert_eq!(sub(1).lanes(0), 1);
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
            assert_eq!(name, "mongo_url");
            Ok(Some("mongodb://127.0.0.1:27017".into()))
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
}
