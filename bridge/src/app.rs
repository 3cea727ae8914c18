//! `bridge up` as a library call: migrate, load the host, listen. Tests and
//! benchmarks start the same thing on a free port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::database::Database;
use crate::events::amqp::{AmqpConfig, AmqpConsumer, AmqpPublisher};
use crate::events::dispatch::DispatchConfig;
use crate::events::embedded::EmbeddedDispatcher;
use crate::events::event::Signer;
use crate::events::invoke::Invoker;
use crate::events::kafka::{KafkaConfig, KafkaConsumer, KafkaPublisher};
use crate::events::relay::OutboxRelay;
use crate::events::replay::{self, ReplayReport};
use crate::events::subscription::{self, Subscription};
use crate::host::server::Server;
use crate::host::{Host, HostConfig};
use crate::keys::JwtKeys;
use crate::manifest::Manifest;
use crate::variables::{AppVariables, env_key};

/// Everything `bridge up` needs.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Path of `spin.toml`.
    pub manifest: PathBuf,
    /// Listen address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Migrations directory; `None` skips migrating.
    pub migrations: Option<PathBuf>,
    /// Host settings (limits, cache, variable overrides).
    pub host: HostConfig,
    /// Dispatch events to subscribers; `None` serves HTTP only.
    pub events: Option<DispatchConfig>,
    /// How events travel from the outbox to the subscribers.
    pub broker: BrokerConfig,
}

/// The event transport.
#[derive(Debug, Clone, Default)]
pub enum BrokerConfig {
    /// No broker: each subscription reads the outbox itself.
    #[default]
    Embedded,
    /// RabbitMQ: the outbox relay publishes, a consumer per subscription.
    Amqp(AmqpConfig),
    /// Kafka: the outbox relay produces, a consumer group per subscription.
    Kafka(KafkaConfig),
}

/// A running application.
pub struct RunningApp {
    /// The bound address.
    pub addr: SocketAddr,
    /// The host, for inspection (timings, route table).
    pub host: Arc<Host>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    events: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl RunningApp {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits for the listener to end.
    ///
    /// # Errors
    /// When the server task failed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some((tx, task)) = self.events.take() {
            let _ = tx.send(true);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.context("server task panicked")?,
            None => Ok(()),
        }
    }

    /// Waits until the server ends (it only ends on error or `stop`).
    ///
    /// # Errors
    /// When the server task failed.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        match self.task.take() {
            Some(task) => task.await.context("server task panicked")?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        if let Some((tx, task)) = self.events.take() {
            let _ = tx.send(true);
            task.abort();
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Adds a development JWT key pair when the manifest wants one and none is
/// configured, so a first `bridge up` needs no set-up. Tokens signed with it
/// do not survive a restart.
pub fn ensure_dev_keys(manifest: &Manifest, host: &mut HostConfig) {
    let wants = |name: &str| manifest.doc.variables.contains_key(name);
    let overrides = &host.variable_overrides;
    let configured =
        |name: &str| overrides.contains_key(name) || std::env::var_os(env_key(name)).is_some();
    let need_keys = wants("jwt_private_key")
        && wants("jwt_public_key")
        && !configured("jwt_private_key")
        && !configured("jwt_public_key");
    let need_secret = wants(SIGNING_SECRET) && !configured(SIGNING_SECRET);
    if need_keys {
        tracing::warn!(
            "no JWT keys configured: generated a development key pair for this run only \
             (set SPIN_VARIABLE_JWT_PRIVATE_KEY / SPIN_VARIABLE_JWT_PUBLIC_KEY from `bridge keygen` for real use)"
        );
        let keys = JwtKeys::generate();
        host.variable_overrides
            .insert("jwt_private_key".into(), keys.private_key);
        host.variable_overrides
            .insert("jwt_public_key".into(), keys.public_key);
    }
    if need_secret {
        tracing::warn!(
            "no bridge_signing_secret configured: generated one for this run only \
             (set SPIN_VARIABLE_BRIDGE_SIGNING_SECRET; `bridge relay` and the functions must share it)"
        );
        let secret = hex::encode(JwtKeys::random_bytes::<32>());
        host.variable_overrides
            .insert(SIGNING_SECRET.into(), secret);
    }
}

/// The application variable holding the event-delivery signing secret.
pub const SIGNING_SECRET: &str = "bridge_signing_secret";

/// Subscriptions checked against the host's routes, and the signer.
///
/// # Errors
/// When a subscription's route is not served by its own component, or the
/// signing secret is missing.
pub fn event_wiring(
    manifest: &Manifest,
    host: &Host,
) -> anyhow::Result<(Vec<Subscription>, Signer)> {
    let subscriptions = subscription::from_manifest(manifest)?;
    for sub in &subscriptions {
        let served_by = host.component_for_path(&sub.route);
        if served_by != Some(sub.name.as_str()) {
            anyhow::bail!(
                "subscription of component {}: route {} is served by {:?}, not by the component itself",
                sub.name,
                sub.route,
                served_by
            );
        }
    }
    let secret = host.app_variable(SIGNING_SECRET).unwrap_or_default();
    if !subscriptions.is_empty() && secret.is_empty() {
        anyhow::bail!("the app has subscriptions but no {SIGNING_SECRET} variable");
    }
    Ok((subscriptions, Signer::new(secret)))
}

/// The database the `database_url` application variable names, reached
/// with the host's TLS settings; `None` if the app declares no such
/// variable. Resolves that variable alone, so commands that only need the
/// database (`bridge migrate`) do not ask for the JWT keys.
///
/// # Errors
/// When the variable is required but unset, or not a valid connection
/// string.
pub fn database(manifest: &Manifest, host: &HostConfig) -> anyhow::Result<Option<Database>> {
    let url = AppVariables::lookup(
        &manifest.doc,
        &host.variable_overrides,
        |k| std::env::var(k).ok(),
        DATABASE_URL,
    )?;
    url.map(|url| Database::new(&url, &host.pools.pg_tls))
        .transpose()
        .context("database_url")
}

/// The application variable naming the database.
pub const DATABASE_URL: &str = "database_url";

/// Migrates (when asked), loads the host and starts serving.
///
/// # Errors
/// When the manifest, migrations, components or listener fail.
pub async fn start(mut opts: AppOptions) -> anyhow::Result<RunningApp> {
    let manifest = Manifest::load(&opts.manifest)?;
    ensure_dev_keys(&manifest, &mut opts.host);
    let database = database(&manifest, &opts.host)?;
    if let Some(dir) = &opts.migrations {
        let database = database
            .as_ref()
            .context("migrations given but the app declares no database_url variable")?;
        let migrations = crate::migrate::read_dir(dir)?;
        crate::migrate::run(database, &migrations).await?;
    }
    let host_config = opts.host.clone();
    let for_host = manifest.clone();
    let host = tokio::task::spawn_blocking(move || Host::new(&for_host, host_config))
        .await
        .context("loading components panicked")??;
    let events = match opts.events {
        Some(config) => {
            let (subscriptions, signer) = event_wiring(&manifest, &host)?;
            if !subscriptions.is_empty() && database.is_none() {
                anyhow::bail!("the app has subscriptions but no {DATABASE_URL} variable");
            }
            database
                .filter(|_| !subscriptions.is_empty())
                .map(|database| {
                    let (tx, rx) = watch::channel(false);
                    let task = tokio::spawn(run_events(
                        opts.broker,
                        database,
                        subscriptions,
                        Invoker::Embedded(host.clone()),
                        signer,
                        config,
                        rx,
                    ));
                    (tx, task)
                })
        }
        None => None,
    };
    let server = Server::bind(host.clone(), opts.listen).await?;
    let addr = server.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = rx.await;
    }));
    Ok(RunningApp {
        addr,
        host,
        shutdown: Some(tx),
        task: Some(task),
        events,
    })
}

/// Moves events from the outbox to the subscribers through `broker`
/// until `shutdown`. Aborting the returned future's task stops every part
/// of it at once, as a crash would.
pub async fn run_events(
    broker: BrokerConfig,
    database: Database,
    subscriptions: Vec<Subscription>,
    invoker: Invoker,
    signer: Signer,
    config: DispatchConfig,
    shutdown: watch::Receiver<bool>,
) {
    let mut clocks = JoinSet::new();
    for sub in &subscriptions {
        if let Some(every) = config
            .tick_override
            .filter(|_| sub.tick.is_some())
            .or(sub.tick)
        {
            clocks.spawn(crate::events::clock::run(
                sub.clone(),
                every,
                invoker.clone(),
                signer.clone(),
                config.delivery_timeout,
                shutdown.clone(),
            ));
        }
    }
    // Functions served in this process wake the readers directly.
    let local_writes = match &invoker {
        Invoker::Embedded(host) => Some(host.outbox_writes()),
        Invoker::Http { .. } => None,
    };
    match broker {
        BrokerConfig::Embedded => {
            EmbeddedDispatcher {
                database,
                subscriptions,
                invoker,
                signer,
                config,
                local_writes,
            }
            .run(shutdown)
            .await
        }
        BrokerConfig::Amqp(amqp) => {
            let mut consumers = JoinSet::new();
            for subscription in subscriptions.clone() {
                let consumer = AmqpConsumer {
                    amqp: amqp.clone(),
                    subscription,
                    invoker: invoker.clone(),
                    signer: signer.clone(),
                    config: config.clone(),
                };
                consumers.spawn(consumer.run(shutdown.clone()));
            }
            let relay = OutboxRelay {
                database,
                name: "relay:amqp".to_string(),
                config,
                local_writes,
            };
            relay
                .run(|| AmqpPublisher::connect(&amqp, &subscriptions), shutdown)
                .await;
            consumers.join_all().await;
        }
        BrokerConfig::Kafka(kafka) => {
            let mut consumers = JoinSet::new();
            for subscription in subscriptions {
                let consumer = KafkaConsumer {
                    kafka: kafka.clone(),
                    subscription,
                    invoker: invoker.clone(),
                    signer: signer.clone(),
                    config: config.clone(),
                };
                consumers.spawn(consumer.run(shutdown.clone()));
            }
            let relay = OutboxRelay {
                database,
                name: "relay:kafka".to_string(),
                config,
                local_writes,
            };
            relay
                .run(|| async { KafkaPublisher::connect(&kafka) }, shutdown)
                .await;
            consumers.join_all().await;
        }
    }
    clocks.join_all().await;
}

/// The signing secret a remote Spin host verifies deliveries with: the
/// `bridge_signing_secret` variable, which must be set (a generated one
/// could not match the host's).
///
/// # Errors
/// When it is unset or empty.
pub fn shared_signing_secret(manifest: &Manifest, host: &HostConfig) -> anyhow::Result<String> {
    AppVariables::lookup(
        &manifest.doc,
        &host.variable_overrides,
        |k| std::env::var(k).ok(),
        SIGNING_SECRET,
    )
    .ok()
    .flatten()
    .filter(|s| !s.is_empty())
    .context("set SPIN_VARIABLE_BRIDGE_SIGNING_SECRET to the value the Spin host uses")
}

/// `bridge replay`: delivers every event in the outbox that subscription
/// `name` of the manifest at `manifest_path` wants, again (see
/// [`crate::events::replay`]). With `target`, over signed HTTP to the Spin
/// host there; without, to the components loaded in this process.
///
/// # Errors
/// When the manifest, the subscription name, the database or the
/// components fail.
pub async fn replay(
    manifest_path: &Path,
    name: &str,
    mut host: HostConfig,
    target: Option<&str>,
    config: DispatchConfig,
) -> anyhow::Result<ReplayReport> {
    let manifest = Manifest::load(manifest_path)?;
    let subscriptions = subscription::from_manifest(&manifest)?;
    let Some(subscription) = subscriptions.iter().find(|s| s.name == name).cloned() else {
        let known: Vec<&str> = subscriptions.iter().map(|s| s.name.as_str()).collect();
        anyhow::bail!(
            "no subscription {name:?} in {}; the manifest has: {}",
            manifest_path.display(),
            known.join(", ")
        );
    };
    let database =
        database(&manifest, &host)?.context("the app declares no database_url variable")?;
    let (invoker, signer) = match target {
        Some(url) => (
            Invoker::http(url),
            Signer::new(&shared_signing_secret(&manifest, &host)?),
        ),
        None => {
            ensure_dev_keys(&manifest, &mut host);
            let for_host = manifest.clone();
            let loaded = tokio::task::spawn_blocking(move || Host::new(&for_host, host))
                .await
                .context("loading components panicked")??;
            let (_, signer) = event_wiring(&manifest, &loaded)?;
            (Invoker::Embedded(loaded), signer)
        }
    };
    replay::run(database, subscription, invoker, signer, config).await
}
