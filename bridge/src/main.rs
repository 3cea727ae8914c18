//! `bridge`: run spinmesh's functions without the Spin CLI.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bridge::admin::Role;
use bridge::app::BrokerConfig;
use bridge::app::{self, AppOptions};
use bridge::database::PgTls;
use bridge::events::amqp::AmqpConfig;
use bridge::events::dispatch::DispatchConfig;
use bridge::events::kafka::KafkaConfig;
use bridge::host::services::PoolConfig;
use bridge::host::{HostConfig, PgCompat};
use bridge::keys::JwtKeys;
use bridge::manifest::Manifest;
use bridge::telemetry::AdminListen;
use clap::{Parser, Subcommand};

/// The host allocates per request (stores, resource tables, headers); a
/// thread-caching allocator keeps that off glibc malloc's locks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "bridge",
    version,
    about = "spinmesh: embedded Spin host, migrations, event relay"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// How the bridge writes its log (to stderr): `text` for people,
    /// `json` (one object per line) for a log pipeline.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "SPINMESH_LOG_FORMAT"
    )]
    log_format: LogFormat,
}

/// The log's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where `up` and `relay` serve Prometheus metrics.
#[derive(clap::Args)]
struct AdminListenArgs {
    /// Address of the admin listener serving Prometheus metrics at
    /// `GET /metrics`, apart from the app's routes; `off` to serve none.
    #[arg(
        long,
        default_value = bridge::telemetry::DEFAULT_ADMIN_LISTEN,
        env = "SPINMESH_ADMIN_LISTEN"
    )]
    admin_listen: AdminListen,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the application's HTTP routes (migrating first).
    Up(UpArgs),
    /// Apply migrations/ to the database named by the `database_url` variable
    /// (the only variable it needs).
    Migrate(MigrateArgs),
    /// Run the components' build commands, as `spin build` does.
    Build(ManifestArgs),
    /// Print a fresh Ed25519 key pair, a token-mark secret and a
    /// message-sealing key as SPIN_VARIABLE_* assignments.
    Keygen,
    /// Deliver events from the outbox to functions served elsewhere
    /// (`spin up`, a Spin host), as signed HTTP requests.
    Relay(RelayArgs),
    /// Deliver one subscription's events again from the start of the
    /// outbox (e.g. to rebuild a projection), whatever transport carries
    /// its live events.
    Replay(ReplayArgs),
    /// Drive a running deployment (`spin up`, SpinKube, `bridge up`) through
    /// a fixed scenario over HTTP and report each step; exits non-zero on a
    /// failed or slow step.
    SpinCheck(SpinCheckArgs),
    /// Change a user's role in the database named by `database_url` (the
    /// only variable it needs).
    Admin(AdminArgs),
    /// List, show and redrive dead letters (the table, the AMQP
    /// dead-letter queues or the Kafka `.dlq` topics, by `--broker`).
    #[command(subcommand)]
    DeadLetters(DeadLetterAction),
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// What failed and why: event, subscription, type, attempts, status,
    /// first and last failure, error.
    List(DeadLetterArgs),
    /// Every dead letter of one event, in full (its data included).
    Show {
        /// The event id (the CloudEvent `id`).
        id: String,
        #[command(flatten)]
        common: DeadLetterArgs,
    },
    /// Deliver dead letters again through their subscription: one that is
    /// taken leaves the store; one that fails again goes back with its
    /// attempts added. Exits 1 when any failed again.
    Redrive {
        /// Only this event's dead letters.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<String>,
        /// Every dead letter (of `--subscription`, if given).
        #[arg(long)]
        all: bool,
        /// Deliver over signed HTTP to the Spin host at this base URL
        /// instead of to the components loaded in this process.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        common: DeadLetterArgs,
        #[command(flatten)]
        dispatch: DispatchArgs,
    },
}

#[derive(clap::Args)]
struct DeadLetterArgs {
    /// Only this subscription's (a component, or `sink.<name>`).
    #[arg(long)]
    subscription: Option<String>,
    /// The application manifest (subscriptions, sinks, variables).
    #[arg(
        long,
        short = 'f',
        default_value = "spin.toml",
        env = "SPINMESH_MANIFEST"
    )]
    manifest: PathBuf,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    postgres: PostgresArgs,
}

#[derive(clap::Args)]
struct AdminArgs {
    #[command(subcommand)]
    action: AdminAction,
    /// The application manifest (for `database_url`).
    #[arg(
        long,
        short = 'f',
        default_value = "spin.toml",
        env = "SPINMESH_MANIFEST",
        global = true
    )]
    manifest: PathBuf,
    #[command(flatten)]
    postgres: PostgresArgs,
}

#[derive(Subcommand)]
enum AdminAction {
    /// Make the account registered with EMAIL an admin.
    Grant {
        /// The account's e-mail.
        email: String,
    },
    /// Make the account registered with EMAIL a plain user again.
    Revoke {
        /// The account's e-mail.
        email: String,
    },
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// The subscription: the name of the component whose
    /// `[component.<name>.tool.bridge]` table declares it.
    #[arg(long)]
    subscription: String,
    /// The application manifest (for the subscription and variables).
    #[arg(
        long,
        short = 'f',
        default_value = "spin.toml",
        env = "SPINMESH_MANIFEST"
    )]
    manifest: PathBuf,
    /// Deliver over signed HTTP to the Spin host at this base URL (as
    /// `bridge relay` does) instead of to the components loaded in this
    /// process.
    #[arg(long)]
    target: Option<String>,
    #[command(flatten)]
    dispatch: DispatchArgs,
    #[command(flatten)]
    postgres: PostgresArgs,
}

#[derive(clap::Args)]
struct SpinCheckArgs {
    /// Base URL of the deployment, e.g. http://127.0.0.1:3000.
    url: String,
    /// A step slower than this (in seconds) fails the check.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    step_limit_secs: Duration,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v < 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("expected a number of seconds between 0 and 3600, got {s:?}"))
}

/// How the bridge's own Postgres connections (and the host's, for the
/// functions) verify TLS.
#[derive(clap::Args)]
struct PostgresArgs {
    /// PEM file of extra trusted root certificates for Postgres TLS, on top
    /// of the system's (repeatable). TLS is used unless the URL says
    /// `sslmode=disable`, and certificates are always verified, as in Spin.
    #[arg(long = "pg-root-ca", env = "SPINMESH_PG_ROOT_CA")]
    pg_root_ca: Vec<PathBuf>,
}

impl PostgresArgs {
    fn tls(&self) -> anyhow::Result<PgTls> {
        self.pg_root_ca
            .iter()
            .try_fold(PgTls::default(), |tls, path| tls.with_root_file(path))
    }
}

#[derive(clap::Args)]
struct MigrateArgs {
    #[command(flatten)]
    manifest: ManifestArgs,
    #[command(flatten)]
    postgres: PostgresArgs,
}

#[derive(clap::Args)]
struct RelayArgs {
    /// The application manifest (for subscriptions and variables).
    #[arg(
        long,
        short = 'f',
        default_value = "spin.toml",
        env = "SPINMESH_MANIFEST"
    )]
    manifest: PathBuf,
    /// Base URL of the Spin host serving the functions.
    #[arg(long, env = "SPINMESH_RELAY_TARGET")]
    target: String,
    #[command(flatten)]
    admin: AdminListenArgs,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    dispatch: DispatchArgs,
    #[command(flatten)]
    postgres: PostgresArgs,
}

/// Delivery settings shared by `up` and `relay`.
#[derive(clap::Args)]
struct DispatchArgs {
    /// First retry delay for a failed delivery, in milliseconds (doubles per attempt).
    #[arg(long, default_value_t = 200, env = "SPINMESH_RETRY_BASE_MS")]
    retry_base_ms: u64,
    /// Subjects delivered in parallel per subscription.
    #[arg(long, default_value_t = 32, env = "SPINMESH_DISPATCH_CONCURRENCY")]
    dispatch_concurrency: usize,
    /// On SIGTERM or Ctrl-C, seconds to let in-flight requests and
    /// deliveries finish before exiting (what is left is redelivered later).
    #[arg(long, default_value_t = 10.0, env = "SPINMESH_SHUTDOWN_TIMEOUT")]
    shutdown_timeout: f64,
}

impl DispatchArgs {
    fn shutdown_timeout(&self) -> anyhow::Result<Duration> {
        Duration::try_from_secs_f64(self.shutdown_timeout)
            .context("--shutdown-timeout must be a non-negative number of seconds")
    }
}

/// Resolves on SIGTERM (what `kill`, systemd and Kubernetes send) or
/// Ctrl-C, saying which.
async fn stop_signal() -> anyhow::Result<&'static str> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => Ok("SIGTERM"),
        r = tokio::signal::ctrl_c() => r.map(|()| "Ctrl-C").map_err(Into::into),
    }
}

impl DispatchArgs {
    fn config(&self) -> DispatchConfig {
        DispatchConfig {
            backoff_base: Duration::from_millis(self.retry_base_ms),
            concurrency: self.dispatch_concurrency,
            ..DispatchConfig::default()
        }
    }
}

#[derive(clap::Args)]
struct ManifestArgs {
    /// The application manifest.
    #[arg(
        long,
        short = 'f',
        default_value = "spin.toml",
        env = "SPINMESH_MANIFEST"
    )]
    manifest: PathBuf,
    /// Directory of SQL migrations.
    #[arg(long, default_value = "migrations")]
    migrations: PathBuf,
}

#[derive(clap::Args)]
struct UpArgs {
    #[command(flatten)]
    manifest: ManifestArgs,
    /// Address to serve HTTP on.
    #[arg(long, default_value = "127.0.0.1:3000", env = "SPINMESH_LISTEN")]
    listen: SocketAddr,
    #[command(flatten)]
    admin: AdminListenArgs,
    /// Build components whose sources changed before starting.
    #[arg(long)]
    build: bool,
    /// Do not apply migrations on start.
    #[arg(long)]
    no_migrate: bool,
    /// Per-request time limit in milliseconds (a runaway guest is stopped).
    #[arg(long, default_value_t = 30_000, env = "SPINMESH_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: u64,
    /// Per-instance linear memory limit in MiB.
    #[arg(long, default_value_t = 128, env = "SPINMESH_MAX_MEMORY_MB")]
    max_memory_mb: usize,
    /// Maximum concurrent instances (pool slots).
    #[arg(long, default_value_t = 256, env = "SPINMESH_MAX_CONCURRENCY")]
    max_concurrency: usize,
    /// Maximum Postgres connections per database address.
    #[arg(long, default_value_t = 16, env = "SPINMESH_PG_POOL_SIZE")]
    pg_pool_size: usize,
    /// Maximum Postgres connections one request's instance may hold open.
    #[arg(
        long,
        default_value_t = 4,
        env = "SPINMESH_PG_CONNECTIONS_PER_INSTANCE"
    )]
    pg_connections_per_instance: usize,
    /// Redis URL backing Spin key-value stores.
    #[arg(
        long,
        default_value = "redis://127.0.0.1:6379",
        env = "SPINMESH_KV_REDIS_URL"
    )]
    kv_redis_url: String,
    /// Directory for compiled components (default: ~/.cache/spinmesh/compiled).
    #[arg(long, env = "SPINMESH_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Disable the compile cache.
    #[arg(long)]
    no_cache: bool,
    /// How closely Postgres `query` reproduces released Spin: `strict`
    /// fails loudly where Spin 4.0.0-4.0.2 would hang or report errors as
    /// text; `lenient` behaves like a fixed Spin and logs a warning.
    #[arg(long, value_enum, default_value_t = PgCompat::Lenient, env = "SPINMESH_SPIN_COMPAT")]
    spin_compat: PgCompat,
    #[command(flatten)]
    broker: BrokerArgs,
    #[command(flatten)]
    dispatch: DispatchArgs,
    #[command(flatten)]
    postgres: PostgresArgs,
}

/// Event transport settings shared by `up` and `relay`.
#[derive(clap::Args)]
struct BrokerArgs {
    /// Where events go between the outbox and the subscribers. `embedded`
    /// (the default) needs no broker: each subscription reads the outbox
    /// through its own durable cursor. `none` serves HTTP only.
    #[arg(long, value_enum, default_value_t = Broker::Embedded, env = "SPINMESH_BROKER")]
    broker: Broker,
    /// RabbitMQ address for `--broker amqp`.
    #[arg(
        long,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        env = "SPINMESH_AMQP_URL"
    )]
    amqp_url: String,
    /// Unacknowledged deliveries per AMQP consumer.
    #[arg(long, default_value_t = 64, env = "SPINMESH_AMQP_PREFETCH")]
    amqp_prefetch: u16,
    /// The topic exchange events are published to.
    #[arg(
        long,
        default_value = "spinmesh.events",
        env = "SPINMESH_AMQP_EXCHANGE"
    )]
    amqp_exchange: String,
    /// The exchange dead letters go to (routing key: the subscription).
    #[arg(
        long,
        default_value = "spinmesh.dlx",
        env = "SPINMESH_AMQP_DEAD_LETTER_EXCHANGE"
    )]
    amqp_dead_letter_exchange: String,
    /// Prefix of the queues (`<prefix><subscription>`, `…<subscription>.dlq`).
    #[arg(long, default_value = "spinmesh.", env = "SPINMESH_AMQP_QUEUE_PREFIX")]
    amqp_queue_prefix: String,
    /// Kafka bootstrap servers for `--broker kafka` (`host:port,...`).
    #[arg(long, default_value = "127.0.0.1:9092", env = "SPINMESH_KAFKA_BROKERS")]
    kafka_brokers: String,
    /// Prefix of the topics (`<prefix><aggregate>`, `<prefix><aggregate>.dlq`).
    #[arg(long, default_value = "", env = "SPINMESH_KAFKA_TOPIC_PREFIX")]
    kafka_topic_prefix: String,
    /// Prefix of the consumer groups (`<prefix><component>`).
    #[arg(long, default_value = "spinmesh.", env = "SPINMESH_KAFKA_GROUP_PREFIX")]
    kafka_group_prefix: String,
    /// Partitions of the topics the bridge creates.
    #[arg(long, default_value_t = 8, env = "SPINMESH_KAFKA_PARTITIONS")]
    kafka_partitions: i32,
    /// Replication factor of the topics the bridge creates (-1: the cluster's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, env = "SPINMESH_KAFKA_REPLICATION")]
    kafka_replication: i32,
    /// Consumer group session timeout in milliseconds.
    #[arg(
        long,
        default_value_t = 10_000,
        env = "SPINMESH_KAFKA_SESSION_TIMEOUT_MS"
    )]
    kafka_session_timeout_ms: u64,
    /// How long a consumer giving partitions up in a rebalance waits for
    /// their deliveries in flight, in milliseconds.
    #[arg(
        long,
        default_value_t = 10_000,
        env = "SPINMESH_KAFKA_HANDOVER_TIMEOUT_MS"
    )]
    kafka_handover_timeout_ms: u64,
    /// Extra librdkafka client property, `name=value` (repeatable), e.g.
    /// `security.protocol=SASL_SSL`, `sasl.mechanisms=SCRAM-SHA-256`.
    #[arg(long = "kafka-property", value_parser = parse_property)]
    kafka_properties: Vec<(String, String)>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected name=value, got {s:?}"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

impl BrokerArgs {
    fn config(&self) -> BrokerConfig {
        match self.broker {
            Broker::Amqp => BrokerConfig::Amqp(AmqpConfig {
                url: self.amqp_url.clone(),
                prefetch: self.amqp_prefetch,
                exchange: self.amqp_exchange.clone(),
                dead_letter_exchange: self.amqp_dead_letter_exchange.clone(),
                queue_prefix: self.amqp_queue_prefix.clone(),
            }),
            Broker::Kafka => BrokerConfig::Kafka(KafkaConfig {
                brokers: self.kafka_brokers.clone(),
                topic_prefix: self.kafka_topic_prefix.clone(),
                group_prefix: self.kafka_group_prefix.clone(),
                partitions: self.kafka_partitions,
                replication: self.kafka_replication,
                session_timeout: Duration::from_millis(self.kafka_session_timeout_ms),
                handover_timeout: Duration::from_millis(self.kafka_handover_timeout_ms),
                properties: self.kafka_properties.clone(),
                ..KafkaConfig::default()
            }),
            Broker::Embedded | Broker::None => BrokerConfig::Embedded,
        }
    }
}

/// Event transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Broker {
    /// Deliver straight from the Postgres outbox.
    Embedded,
    /// Through RabbitMQ (`--amqp-url`).
    Amqp,
    /// Through Kafka or a Kafka-compatible broker (`--kafka-brokers`).
    Kafka,
    /// Do not dispatch events.
    None,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let log = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPINMESH_LOG")
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn,tokio_postgres=warn".into()),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => log.init(),
        LogFormat::Json => log
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
    match cli.command {
        Cmd::Keygen => {
            print!("{}", JwtKeys::generate().as_env());
            println!(
                "SPIN_VARIABLE_TOKEN_MARK_SECRET={}",
                hex::encode(JwtKeys::random_bytes::<32>())
            );
            println!(
                "SPIN_VARIABLE_MESSAGE_SEALING_KEY={}",
                hex::encode(JwtKeys::random_bytes::<32>())
            );
            Ok(())
        }
        Cmd::Build(args) => {
            let manifest = Manifest::load(&args.manifest)?;
            bridge::build::build_all(&manifest, true)
        }
        Cmd::Migrate(args) => {
            let manifest = Manifest::load(&args.manifest.manifest)?;
            let mut host = HostConfig::default();
            host.pools.pg_tls = args.postgres.tls()?;
            let database = app::database(&manifest, &host)?
                .context("the app declares no database_url variable")?;
            let migrations = bridge::migrate::read_dir(&args.manifest.migrations)?;
            let applied = bridge::migrate::run(&database, &migrations).await?;
            println!(
                "{} migration(s) applied, {} already up to date",
                applied.len(),
                migrations.len() - applied.len()
            );
            Ok(())
        }
        Cmd::Up(args) => up(args).await,
        Cmd::Relay(args) => relay(args).await,
        Cmd::Replay(args) => {
            let mut host = HostConfig::default();
            host.pools.pg_tls = args.postgres.tls()?;
            let target = args.target.as_deref().map(base_url).transpose()?;
            let report = app::replay(
                &args.manifest,
                &args.subscription,
                host,
                target,
                args.dispatch.config(),
            )
            .await?;
            println!("Replayed {}: {report}", args.subscription);
            if report.dead_lettered > 0 {
                std::process::exit(1)
            }
            Ok(())
        }
        Cmd::DeadLetters(action) => dead_letters(action).await,
        Cmd::Admin(args) => {
            let manifest = Manifest::load(&args.manifest)?;
            let mut host = HostConfig::default();
            host.pools.pg_tls = args.postgres.tls()?;
            let database = app::database(&manifest, &host)?
                .context("the app declares no database_url variable")?;
            let (email, role) = match &args.action {
                AdminAction::Grant { email } => (email, Role::Admin),
                AdminAction::Revoke { email } => (email, Role::User),
            };
            println!("{}", bridge::admin::set_role(&database, email, role).await?);
            Ok(())
        }
        Cmd::SpinCheck(args) => {
            let report = bridge::spin_check::run(&args.url, args.step_limit_secs).await;
            print!("{report}");
            if report.passed() {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}

/// A `--target` base URL without its trailing slash.
fn base_url(raw: &str) -> anyhow::Result<&str> {
    let target = raw.trim_end_matches('/');
    http::Uri::try_from(target)
        .ok()
        .filter(|u| u.scheme().is_some() && u.authority().is_some())
        .with_context(|| {
            format!("--target {raw:?} is not an absolute http(s) URL such as http://127.0.0.1:3000")
        })?;
    Ok(target)
}

async fn relay(args: RelayArgs) -> anyhow::Result<()> {
    use bridge::events::event::Signer;
    use bridge::events::invoke::Invoker;

    if args.broker.broker == Broker::None {
        anyhow::bail!("`bridge relay` delivers events: choose embedded, amqp or kafka");
    }
    let manifest = Manifest::load(&args.manifest)?;
    let target = base_url(&args.target)?;
    let mut host = HostConfig::default();
    host.pools.pg_tls = args.postgres.tls()?;
    let database =
        app::database(&manifest, &host)?.context("the app declares no database_url variable")?;
    let secret = app::shared_signing_secret(&manifest, &host)?;
    let subscriptions = app::all_subscriptions(&manifest, &host)?;
    println!(
        "Relaying {} subscription(s) from the outbox to {} ({:?})",
        subscriptions.len(),
        args.target,
        args.broker.broker
    );
    let shutdown_timeout = args.dispatch.shutdown_timeout()?;
    let stop_admin = tokio_util::sync::CancellationToken::new();
    if let AdminListen(Some(at)) = args.admin.admin_listen {
        let admin = bridge::telemetry::AdminListener::bind(at).await?;
        println!("Metrics at http://{}/metrics", admin.local_addr()?);
        tokio::spawn(admin.serve(stop_admin.clone(), Default::default()));
    }
    let _stop_admin = stop_admin.drop_guard();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let events = bridge::events::run(
        bridge::events::EventPath {
            broker: args.broker.config(),
            database,
            subscriptions,
            invoker: Invoker::http(target),
            signer: Signer::new(&secret),
            config: args.dispatch.config(),
        },
        rx,
    );
    let mut run = tokio::spawn(events);
    let signal = tokio::select! {
        signal = stop_signal() => signal?,
        ended = &mut run => {
            // The event path only ends by itself when it cannot run.
            return match ended {
                Ok(Ok(())) => Err(anyhow::anyhow!("the event path stopped")),
                Ok(Err(err)) => Err(err.context("the event path stopped")),
                Err(err) => Err(anyhow::anyhow!("the event path crashed: {err}")),
            };
        }
    };
    println!("{signal}: shutting down (up to {shutdown_timeout:?} for deliveries in flight)");
    let _ = tx.send(true);
    match tokio::time::timeout(shutdown_timeout, &mut run).await {
        Ok(Ok(result)) => result,
        Ok(Err(err)) => Err(anyhow::anyhow!("the event path crashed: {err}")),
        Err(_) => {
            tracing::warn!(
                "deliveries still running at the shutdown timeout; they will be redelivered"
            );
            run.abort();
            Ok(())
        }
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let shutdown_timeout = args.dispatch.shutdown_timeout()?;
    if args.build {
        let manifest = Manifest::load(&args.manifest.manifest)?;
        tokio::task::block_in_place(|| bridge::build::build_all(&manifest, false))?;
    }
    let host = HostConfig {
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        max_memory_bytes: args.max_memory_mb << 20,
        max_concurrency: args.max_concurrency,
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir
                .or_else(bridge::host::engine::default_cache_dir)
        },
        pools: PoolConfig {
            pg_max_connections: args.pg_pool_size,
            pg_max_connections_per_instance: args.pg_connections_per_instance,
            key_value_redis_url: args.kv_redis_url,
            pg_tls: args.postgres.tls()?,
            pg_compat: args.spin_compat,
            ..PoolConfig::default()
        },
        ..HostConfig::default()
    };
    let running = app::start(AppOptions {
        manifest: args.manifest.manifest,
        listen: args.listen,
        migrations: (!args.no_migrate).then_some(args.manifest.migrations),
        host,
        broker: args.broker.config(),
        events: (args.broker.broker != Broker::None).then(|| args.dispatch.config()),
        admin_listen: args.admin.admin_listen.0,
    })
    .await?;
    let url = running.url();
    println!("Serving {url} (application {})", running.host.app_name());
    if let Some(admin) = running.admin_addr {
        println!("Metrics at http://{admin}/metrics");
    }
    println!("Available Routes:");
    for (route, component) in running.host.route_table() {
        match route.strip_suffix("/...") {
            Some(prefix) => println!("  {component}: {url}{prefix} (wildcard)"),
            None => println!("  {component}: {url}{route}"),
        }
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "ready");
    let mut running = running;
    let signal = tokio::select! {
        signal = stop_signal() => signal?,
        // The listener or the event path died: say why and exit non-zero
        // rather than serve HTTP with no events moving.
        err = running.failed() => return Err(err),
    };
    println!(
        "{signal}: shutting down (up to {shutdown_timeout:?} for requests and deliveries in flight)"
    );
    running.shutdown(shutdown_timeout).await
}

async fn dead_letters(action: DeadLetterAction) -> anyhow::Result<()> {
    use bridge::app::{DeadLetterCommand, DeadLetterOutcome};
    use bridge::events::dead_letters::Selection;

    let (common, id, command, show) = match action {
        DeadLetterAction::List(common) => (common, None, DeadLetterCommand::List, false),
        DeadLetterAction::Show { id, common } => (common, Some(id), DeadLetterCommand::List, true),
        DeadLetterAction::Redrive {
            id,
            all: _,
            target,
            common,
            dispatch,
        } => {
            let target = target
                .as_deref()
                .map(base_url)
                .transpose()?
                .map(str::to_string);
            let config = dispatch.config();
            (
                common,
                id,
                DeadLetterCommand::Redrive { target, config },
                false,
            )
        }
    };
    let mut host = HostConfig::default();
    host.pools.pg_tls = common.postgres.tls()?;
    let selection = Selection {
        subscription: common.subscription.clone(),
        event_id: id,
    };
    let broker = match common.broker.broker {
        Broker::None => BrokerConfig::Embedded,
        _ => common.broker.config(),
    };
    match app::dead_letters(&common.manifest, host, &broker, &selection, command).await? {
        DeadLetterOutcome::Listed(entries) if show => {
            anyhow::ensure!(!entries.is_empty(), "no dead letter for that event");
            for entry in entries {
                println!("{}", bridge::events::dead_letters::describe(&entry));
            }
        }
        DeadLetterOutcome::Listed(entries) => {
            print!("{}", bridge::events::dead_letters::table(&entries));
        }
        DeadLetterOutcome::Redriven(report) => {
            println!("{report}");
            if report.failed > 0 {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument's type matches how it is read (clap checks that only
    /// when the command line is parsed).
    #[test]
    fn the_serving_commands_parse_with_their_defaults_and_overrides() {
        Cli::try_parse_from(["bridge", "up"]).unwrap();
        Cli::try_parse_from([
            "bridge",
            "up",
            "--admin-listen",
            "off",
            "--log-format",
            "json",
        ])
        .unwrap();
        let relay = Cli::try_parse_from([
            "bridge",
            "relay",
            "--target",
            "http://127.0.0.1:3000",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .unwrap();
        let Cmd::Relay(args) = relay.command else {
            panic!("relay");
        };
        assert_eq!(
            args.admin.admin_listen,
            AdminListen(Some("127.0.0.1:0".parse().unwrap()))
        );
        assert!(Cli::try_parse_from(["bridge", "up", "--admin-listen", "nowhere"]).is_err());
    }
}
