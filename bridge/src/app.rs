//! `bridge up` as a library call: migrate, load the host, listen. Tests and
//! benchmarks start the same thing on a free port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
}

/// A running application.
pub struct RunningApp {
    /// The bound address.
    pub addr: SocketAddr,
    /// The host, for inspection (timings, route table).
    pub host: Arc<Host>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
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
    let configured = |name: &str| {
        host.variable_overrides.contains_key(name) || std::env::var_os(env_key(name)).is_some()
    };
    if wants("jwt_private_key")
        && wants("jwt_public_key")
        && !configured("jwt_private_key")
        && !configured("jwt_public_key")
    {
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
}

/// The resolved `database_url` application variable, if the app declares one.
///
/// # Errors
/// When a required variable is missing.
pub fn database_url(manifest: &Manifest, host: &HostConfig) -> anyhow::Result<Option<String>> {
    let vars = AppVariables::resolve(&manifest.doc, &host.variable_overrides, |k| {
        std::env::var(k).ok()
    })?;
    Ok(vars.get("database_url").map(str::to_string))
}

/// Migrates (when asked), loads the host and starts serving.
///
/// # Errors
/// When the manifest, migrations, components or listener fail.
pub async fn start(mut opts: AppOptions) -> anyhow::Result<RunningApp> {
    let manifest = Manifest::load(&opts.manifest)?;
    ensure_dev_keys(&manifest, &mut opts.host);
    if let Some(dir) = &opts.migrations {
        let url = database_url(&manifest, &opts.host)?
            .context("migrations given but the app declares no database_url variable")?;
        let migrations = crate::migrate::read_dir(dir)?;
        crate::migrate::run(&url, &migrations).await?;
    }
    let host_config = opts.host.clone();
    let host = tokio::task::spawn_blocking(move || Host::new(&manifest, host_config))
        .await
        .context("loading components panicked")??;
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
    })
}
