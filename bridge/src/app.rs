//! `bridge up` as a library call: migrate, load the host, listen. Tests and
//! benchmarks start the same thing on a free port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::database::Database;
use crate::events::dead_letters::amqp::AmqpStore;
use crate::events::dead_letters::kafka::KafkaStore;
use crate::events::dead_letters::table::TableStore;
use crate::events::dead_letters::{
    self as dead_letter_store, Entry, RedriveReport, Selection, Store,
};
use crate::events::dispatch::DispatchConfig;
use crate::events::event::Signer;
use crate::events::invoke::Invoker;
use crate::events::pipeline::Delivery;
use crate::events::replay::{self, ReplayReport};
use crate::events::sink;
use crate::events::subscription::{self, Subscription};
use crate::events::{EventPath, run};
use crate::host::server::Server;
use crate::host::{Host, HostConfig};
use crate::keys::JwtKeys;
use crate::manifest::Manifest;
use crate::telemetry::AdminListener;
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
    /// Where to serve `GET /metrics` (see [`crate::telemetry`]); `None`
    /// records nothing.
    pub admin_listen: Option<SocketAddr>,
}

/// The event transport (see [`crate::events::BrokerConfig`]).
pub use crate::events::BrokerConfig;

/// A running application.
pub struct RunningApp {
    /// The bound address.
    pub addr: SocketAddr,
    /// The host, for inspection (timings, route table).
    pub host: Arc<Host>,
    /// The admin listener's bound address, when it is on.
    pub admin_addr: Option<SocketAddr>,
    stop: CancellationToken,
    connections: TaskTracker,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    events: Option<(watch::Sender<bool>, JoinHandle<anyhow::Result<()>>)>,
}

/// How long [`RunningApp::stop`] lets in-flight work finish.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

impl RunningApp {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops gracefully within [`DEFAULT_SHUTDOWN_TIMEOUT`] (see
    /// [`RunningApp::shutdown`]).
    ///
    /// # Errors
    /// When the server task failed.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown(DEFAULT_SHUTDOWN_TIMEOUT).await
    }

    /// Stops accepting connections and events, lets in-flight requests
    /// and deliveries finish (deliveries are then acknowledged or
    /// committed) for up to `timeout`, and returns. What is still running
    /// then is dropped: its requests get no answer, its events are not
    /// acknowledged and are delivered again after a restart.
    ///
    /// # Errors
    /// When the server task failed.
    pub async fn shutdown(mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.stop.cancel();
        self.connections.close();
        let requests = async {
            if tokio::time::timeout_at(deadline, self.connections.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    still_running = self.connections.len(),
                    "requests still running at the shutdown timeout; dropping them"
                );
            }
        };
        let events = async {
            let Some((tx, mut task)) = self.events.take() else {
                return;
            };
            let _ = tx.send(true);
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(Err(err))) => {
                    tracing::error!(error = %format!("{err:#}"), "the event path failed")
                }
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(
                        "deliveries still running at the shutdown timeout; they will be redelivered after a restart"
                    );
                    task.abort();
                }
            }
        };
        tokio::join!(requests, events);
        match self.server.take() {
            Some(task) => task.await.context("server task panicked")?,
            None => Ok(()),
        }
    }

    /// Waits until the app fails: the listener, or the event path, which
    /// only ends on its own when it could not start or crashed (serving
    /// HTTP while no events move would hide that).
    ///
    /// # Errors
    /// Always: why the app stopped.
    pub async fn failed(&mut self) -> anyhow::Error {
        let events = async {
            match self.events.as_mut() {
                Some((_, task)) => match task.await {
                    Ok(Ok(())) => anyhow::anyhow!("the event path stopped"),
                    Ok(Err(err)) => err.context("the event path stopped"),
                    Err(err) => anyhow::anyhow!("the event path crashed: {err}"),
                },
                None => std::future::pending().await,
            }
        };
        let server = async {
            match self.server.as_mut() {
                Some(task) => match task.await {
                    Ok(Ok(())) => anyhow::anyhow!("the listener stopped"),
                    Ok(Err(err)) => err.context("the listener failed"),
                    Err(err) => anyhow::anyhow!("the listener crashed: {err}"),
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            err = events => {
                self.events = None;
                err
            }
            err = server => {
                self.server = None;
                err
            }
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        if let Some((tx, task)) = self.events.take() {
            let _ = tx.send(true);
            task.abort();
        }
        self.stop.cancel();
    }
}

/// Adds a development JWT key pair and the development secrets
/// ([`GENERATED_SECRETS`]) when the manifest wants them and none is
/// configured, so a first `bridge up` needs no set-up. Tokens signed with
/// them do not survive a restart.
pub fn ensure_dev_keys(manifest: &Manifest, host: &mut HostConfig) {
    let wants = |name: &str| manifest.doc.variables.contains_key(name);
    let overrides = &host.variable_overrides;
    let configured =
        |name: &str| overrides.contains_key(name) || std::env::var_os(env_key(name)).is_some();
    let need_keys = wants("jwt_private_key")
        && wants("jwt_public_key")
        && !configured("jwt_private_key")
        && !configured("jwt_public_key");
    let missing_secrets: Vec<&(&str, &str)> = GENERATED_SECRETS
        .iter()
        .filter(|(name, _)| wants(name) && !configured(name))
        .collect();
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
    for (name, shared_with) in missing_secrets {
        tracing::warn!(
            "no {name} configured: generated one for this run only \
             (set {}; {shared_with} must share it)",
            env_key(name)
        );
        let secret = hex::encode(JwtKeys::random_bytes::<32>());
        host.variable_overrides.insert((*name).into(), secret);
    }
}

/// Secret variables a development run generates when unset, with who must
/// share the value in a real deployment.
pub const GENERATED_SECRETS: &[(&str, &str)] = &[
    (SIGNING_SECRET, "`bridge relay` and the functions"),
    (TOKEN_MARK_SECRET, "every instance of the functions"),
    (
        MESSAGE_SEALING_KEY,
        "auth, notifications and the bridge's email and SMS sinks",
    ),
];

/// The application variable keying the one-time tokens sealed inside
/// events (see `spinmesh_delivery::seal`).
pub const MESSAGE_SEALING_KEY: &str = spinmesh_delivery::seal::SEALING_KEY_VARIABLE;

/// The application variable keying the verified-token marks in Redis.
pub const TOKEN_MARK_SECRET: &str = "token_mark_secret";

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
        let route = sub.route().unwrap_or_default();
        let served_by = host.component_for_path(route);
        if served_by != Some(sub.name.as_str()) {
            anyhow::bail!(
                "subscription of component {}: route {route} is served by {:?}, not by the component itself",
                sub.name,
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

/// Every subscription of the manifest: the functions' and the sinks that
/// are switched on. What the commands that act on subscriptions by name
/// (`replay`, `dead-letters`, `relay`) choose from.
///
/// # Errors
/// As [`subscription::from_manifest`] and [`sinks`].
pub fn all_subscriptions(
    manifest: &Manifest,
    host: &HostConfig,
) -> anyhow::Result<Vec<Subscription>> {
    let mut subscriptions = subscription::from_manifest(manifest)?;
    subscriptions.extend(sinks(manifest, host)?);
    Ok(subscriptions)
}

/// The manifest's sinks that are switched on (their URL variable set),
/// as subscriptions; the others are logged as off.
///
/// # Errors
/// When a sink table is malformed or a required variable is unset.
pub fn sinks(manifest: &Manifest, host: &HostConfig) -> anyhow::Result<Vec<Subscription>> {
    subscription::sinks_from_manifest(manifest, |name| {
        AppVariables::lookup(
            &manifest.doc,
            &host.variable_overrides,
            |k| std::env::var(k).ok(),
            name,
        )
    })
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
    // Bound first: the recorder is installed before anything records.
    let admin = match opts.admin_listen {
        Some(at) => Some(AdminListener::bind(at).await?),
        None => None,
    };
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
            let (mut subscriptions, signer) = event_wiring(&manifest, &host)?;
            subscriptions.extend(sinks(&manifest, &opts.host)?);
            if !subscriptions.is_empty() && database.is_none() {
                anyhow::bail!("the app has subscriptions but no {DATABASE_URL} variable");
            }
            database
                .filter(|_| !subscriptions.is_empty())
                .map(|database| {
                    let (tx, rx) = watch::channel(false);
                    let task = tokio::spawn(run(
                        EventPath {
                            broker: opts.broker,
                            database,
                            subscriptions,
                            invoker: Invoker::Embedded(host.clone()),
                            signer,
                            config,
                        },
                        rx,
                    ));
                    (tx, task)
                })
        }
        None => None,
    };
    let server = Server::bind(host.clone(), opts.listen).await?;
    let addr = server.local_addr()?;
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let admin_addr = match admin {
        Some(admin) => {
            let bound = admin.local_addr()?;
            tokio::spawn(admin.serve(stop.clone(), connections.clone()));
            Some(bound)
        }
        None => None,
    };
    let task = tokio::spawn(server.serve(stop.clone(), connections.clone()));
    Ok(RunningApp {
        addr,
        host,
        admin_addr,
        stop,
        connections,
        server: Some(task),
        events,
    })
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
    host: HostConfig,
    target: Option<&str>,
    config: DispatchConfig,
) -> anyhow::Result<ReplayReport> {
    let manifest = Manifest::load(manifest_path)?;
    let subscriptions = all_subscriptions(&manifest, &host)?;
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
    let (invoker, signer) = delivery_target(&manifest, host, target).await?;
    replay::run(database, subscription, invoker, signer, config).await
}

/// Where deliveries of a command (`replay`, `dead-letters redrive`) go:
/// over signed HTTP to the Spin host at `target`, or to the components
/// loaded in this process.
///
/// # Errors
/// When the signing secret is missing (with a target) or the components
/// do not load.
async fn delivery_target(
    manifest: &Manifest,
    mut host: HostConfig,
    target: Option<&str>,
) -> anyhow::Result<(Invoker, Signer)> {
    Ok(match target {
        Some(url) => (
            Invoker::http(url),
            Signer::new(&shared_signing_secret(manifest, &host)?),
        ),
        None => {
            ensure_dev_keys(manifest, &mut host);
            let for_host = manifest.clone();
            let loaded = tokio::task::spawn_blocking(move || Host::new(&for_host, host))
                .await
                .context("loading components panicked")??;
            let (_, signer) = event_wiring(manifest, &loaded)?;
            (Invoker::Embedded(loaded), signer)
        }
    })
}

/// What `bridge dead-letters` does.
#[derive(Debug, Clone)]
pub enum DeadLetterCommand {
    /// Print the chosen dead letters.
    List,
    /// Deliver the chosen ones again; with `target`, to that Spin host.
    Redrive {
        /// Base URL of a running Spin host, or in-process.
        target: Option<String>,
        /// Delivery policy.
        config: DispatchConfig,
    },
}

/// What `bridge dead-letters` found or did.
#[derive(Debug)]
pub enum DeadLetterOutcome {
    /// The chosen dead letters.
    Listed(Vec<Entry>),
    /// A redrive's report.
    Redriven(RedriveReport),
}

/// `bridge dead-letters`: the dead letters of the app at
/// `manifest_path`, in the store of `broker` (the table for embedded, the
/// dead-letter queues for RabbitMQ, the `.dlq` topics for Kafka).
///
/// # Errors
/// When the manifest, the store or a delivery target fails.
pub async fn dead_letters(
    manifest_path: &Path,
    host: HostConfig,
    broker: &BrokerConfig,
    selection: &Selection,
    command: DeadLetterCommand,
) -> anyhow::Result<DeadLetterOutcome> {
    let manifest = Manifest::load(manifest_path)?;
    let subscriptions = all_subscriptions(&manifest, &host)?;
    if let Some(name) = &selection.subscription {
        anyhow::ensure!(
            subscriptions.iter().any(|s| &s.name == name),
            "no subscription {name:?} in {}",
            manifest_path.display()
        );
    }
    match broker {
        BrokerConfig::Embedded => {
            let database =
                database(&manifest, &host)?.context("the app declares no database_url variable")?;
            let store = TableStore::connect(&database).await?;
            act_on(store, &manifest, host, subscriptions, selection, command).await
        }
        BrokerConfig::Amqp(config) => {
            let store = AmqpStore::connect(config).await?;
            act_on(store, &manifest, host, subscriptions, selection, command).await
        }
        BrokerConfig::Kafka(config) => {
            let store = KafkaStore::connect(config)?;
            act_on(store, &manifest, host, subscriptions, selection, command).await
        }
    }
}

async fn act_on(
    store: impl Store,
    manifest: &Manifest,
    host: HostConfig,
    subscriptions: Vec<Subscription>,
    selection: &Selection,
    command: DeadLetterCommand,
) -> anyhow::Result<DeadLetterOutcome> {
    match command {
        DeadLetterCommand::List => {
            let names: Vec<String> = subscriptions.iter().map(|s| s.name.clone()).collect();
            Ok(DeadLetterOutcome::Listed(
                dead_letter_store::list(store, &names, selection).await?,
            ))
        }
        DeadLetterCommand::Redrive { target, config } => {
            // The email and SMS sinks keep their ledger there.
            let database =
                database(manifest, &host)?.context("the app declares no database_url variable")?;
            let (invoker, signer) = delivery_target(manifest, host, target.as_deref()).await?;
            let mut deliveries = HashMap::new();
            for subscription in subscriptions {
                let sink = sink::build(
                    &subscription,
                    &invoker,
                    &signer,
                    &database,
                    config.delivery_timeout,
                )
                .await?;
                deliveries.insert(
                    subscription.name.clone(),
                    Arc::new(Delivery {
                        subscription,
                        sink,
                        config: config.clone(),
                    }),
                );
            }
            Ok(DeadLetterOutcome::Redriven(
                dead_letter_store::redrive(store, selection, &deliveries).await?,
            ))
        }
    }
}
