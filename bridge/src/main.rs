//! `bridge`: run spinmesh's functions without the Spin CLI.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bridge::app::BrokerConfig;
use bridge::app::{self, AppOptions};
use bridge::events::amqp::AmqpConfig;
use bridge::events::dispatch::DispatchConfig;
use bridge::host::HostConfig;
use bridge::host::services::PoolConfig;
use bridge::keys::JwtKeys;
use bridge::manifest::Manifest;
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
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the application's HTTP routes (migrating first).
    Up(UpArgs),
    /// Apply migrations/ to the database named by the `database_url` variable.
    Migrate(ManifestArgs),
    /// Run the components' build commands, as `spin build` does.
    Build(ManifestArgs),
    /// Print a fresh Ed25519 key pair as SPIN_VARIABLE_* assignments.
    Keygen,
    /// Deliver events from the outbox to functions served elsewhere
    /// (`spin up`, a Spin host), as signed HTTP requests.
    Relay(RelayArgs),
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
    dispatch: DispatchArgs,
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
    /// Where events go between the outbox and the subscribers. `embedded`
    /// (the default) needs no broker: each subscription reads the outbox
    /// through its own durable cursor. `none` serves HTTP only.
    #[arg(long, value_enum, default_value_t = Broker::Embedded, env = "SPINMESH_BROKER")]
    broker: Broker,
    #[command(flatten)]
    dispatch: DispatchArgs,
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
}

/// Event transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Broker {
    /// Deliver straight from the Postgres outbox.
    Embedded,
    /// Through RabbitMQ (`--amqp-url`).
    Amqp,
    /// Do not dispatch events.
    None,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPINMESH_LOG")
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn,tokio_postgres=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Keygen => {
            print!("{}", JwtKeys::generate().as_env());
            Ok(())
        }
        Cmd::Build(args) => {
            let manifest = Manifest::load(&args.manifest)?;
            bridge::build::build_all(&manifest, true)
        }
        Cmd::Migrate(args) => {
            let manifest = Manifest::load(&args.manifest)?;
            let url = app::database_url(&manifest, &HostConfig::default())?
                .context("the app declares no database_url variable")?;
            let migrations = bridge::migrate::read_dir(&args.migrations)?;
            let applied = bridge::migrate::run(&url, &migrations).await?;
            println!(
                "{} migration(s) applied, {} already up to date",
                applied.len(),
                migrations.len() - applied.len()
            );
            Ok(())
        }
        Cmd::Up(args) => up(args).await,
        Cmd::Relay(args) => relay(args).await,
    }
}

async fn relay(args: RelayArgs) -> anyhow::Result<()> {
    use bridge::events::embedded::EmbeddedDispatcher;
    use bridge::events::event::Signer;
    use bridge::events::invoke::Invoker;
    use bridge::events::subscription;
    use bridge::variables::AppVariables;

    let manifest = Manifest::load(&args.manifest)?;
    let vars = AppVariables::resolve(&manifest.doc, &Default::default(), |k| {
        std::env::var(k).ok()
    })?;
    let database_url = vars
        .get("database_url")
        .context("the app declares no database_url variable")?
        .to_string();
    let secret = vars
        .get(app::SIGNING_SECRET)
        .filter(|s| !s.is_empty())
        .context("set SPIN_VARIABLE_BRIDGE_SIGNING_SECRET to the value the Spin host uses")?;
    let subscriptions = subscription::from_manifest(&manifest)?;
    println!(
        "Relaying {} subscription(s) from the outbox to {}",
        subscriptions.len(),
        args.target
    );
    let dispatcher = EmbeddedDispatcher {
        database_url,
        subscriptions,
        invoker: Invoker::http(&args.target),
        signer: Signer::new(secret),
        config: args.dispatch.config(),
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(dispatcher.run(rx));
    tokio::signal::ctrl_c().await?;
    println!("Shutting down");
    let _ = tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
    Ok(())
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
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
            key_value_redis_url: args.kv_redis_url,
            ..PoolConfig::default()
        },
        ..HostConfig::default()
    };
    let running = app::start(AppOptions {
        manifest: args.manifest.manifest,
        listen: args.listen,
        migrations: (!args.no_migrate).then_some(args.manifest.migrations),
        host,
        broker: match args.broker {
            Broker::Amqp => BrokerConfig::Amqp(AmqpConfig {
                url: args.amqp_url,
                prefetch: args.amqp_prefetch,
                ..AmqpConfig::default()
            }),
            Broker::Embedded | Broker::None => BrokerConfig::Embedded,
        },
        events: (args.broker != Broker::None).then(|| args.dispatch.config()),
    })
    .await?;
    let url = running.url();
    println!("Serving {url} (application {})", running.host.app_name());
    println!("Available Routes:");
    for (route, component) in running.host.route_table() {
        match route.strip_suffix("/...") {
            Some(prefix) => println!("  {component}: {url}{prefix} (wildcard)"),
            None => println!("  {component}: {url}{route}"),
        }
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "ready");
    tokio::select! {
        r = running.wait() => r,
        _ = tokio::signal::ctrl_c() => {
            println!("Shutting down");
            Ok(())
        }
    }
}
