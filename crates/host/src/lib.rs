//! The embedded Spin host: wasmtime, the Spin interfaces, HTTP routing.
//!
//! Heavy work happens once in [`Host::new`]: one engine, one linker, every
//! component compiled (or mapped from the compile cache) and pre-linked.
//! Per request, [`Host::handle`] only creates a small `Store`, instantiates
//! from the pre-linked component into a pooled slot and calls the guest.
//!
//! A request's path through the modules: [`server`] accepts it,
//! [`Host::handle`] finds its route ([`router`]) and adds Spin's headers
//! ([`spin_headers`]), `instance` runs the guest (its stdout and stderr
//! through [`guest_output`]), `body` shapes its answer;
//! `problem` answers when no function can. `load` builds all of it at
//! start. One module per Spin interface (`postgres`, `redis`, `key_value`,
//! `spin_variables`, `outbound_http`) with their shared clients in
//! [`services`].

#![deny(unsafe_code)]

mod body;
pub mod engine;
pub mod guest_output;
mod instance;
mod key_value;
mod load;
pub mod metrics;
pub mod outbound;
mod outbound_http;
pub mod outbox_writes;
mod postgres;
mod problem;
mod redis;
mod redis_pipeline;
mod request_ids;
pub mod router;
pub mod server;
pub mod services;
pub mod spin_headers;
mod spin_variables;
mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::Semaphore;
use wasmtime::Engine;

use load::LoadedComponent;
pub use postgres::PgCompat;
pub use problem::problem;
use request_ids::RequestIds;
use router::Router;
use services::{PoolConfig, Services};
use spin_headers::{Addressing, absolute_uri, spin_headers};
use spinmesh_config::variables::AppVariables;
pub use state::{ComponentContext, InstanceState};

/// Bindings for the Spin interfaces in `wit/` (everything but WASI).
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "spinmesh:host/host",
        imports: { default: async | trappable },
        with: {
            "spin:postgres/postgres.connection": super::postgres::PgConnection,
            "fermyon:spin/redis.connection": super::redis::RedisConnection,
            "fermyon:spin/key-value.store": super::key_value::KvStore,
        },
    });
}

/// Error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every response the host sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Host settings; every field has a command-line flag in `bridge up`.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Wall-clock limit for one request, guest execution and body included.
    pub request_timeout: Duration,
    /// Linear-memory limit of one instance, in bytes.
    pub max_memory_bytes: usize,
    /// Maximum instances alive at once; further requests wait.
    pub max_concurrency: usize,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Connection pools.
    pub pools: PoolConfig,
    /// Variable values that take precedence over `SPIN_VARIABLE_*`.
    pub variable_overrides: BTreeMap<String, String>,
    /// Record per-request instantiation times (for benchmarks).
    pub record_timings: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_memory_bytes: 128 << 20,
            max_concurrency: 256,
            cache_dir: engine::default_cache_dir(),
            pools: PoolConfig::default(),
            variable_overrides: BTreeMap::new(),
            record_timings: false,
        }
    }
}

/// The running application.
pub struct Host {
    engine: Engine,
    components: Vec<LoadedComponent>,
    router: Router,
    services: Arc<Services>,
    config: HostConfig,
    permits: Arc<Semaphore>,
    timings: Arc<std::sync::Mutex<Vec<u32>>>,
    app_name: String,
    app_vars: AppVariables,
}

impl Host {
    /// A resolved application variable (the bridge's own settings, such as
    /// the event signing secret, live beside the functions' variables).
    pub fn app_variable(&self, name: &str) -> Option<&str> {
        self.app_vars.get(name)
    }

    /// Guests' outbox writes as this host announces them (the event path
    /// waits on them and takes over announcing).
    pub fn outbox_writes(&self) -> outbox_writes::OutboxWrites {
        self.services.outbox.clone()
    }

    /// Which component serves `path`, if any.
    pub fn component_for_path(&self, path: &str) -> Option<&str> {
        self.router
            .find(path)
            .map(|m| self.components[m.component].ctx.id.as_ref())
    }

    /// The application name from the manifest.
    pub fn app_name(&self) -> &str {
        &self.app_name
    }

    /// `(route, component id)` in declaration order, for the start-up banner.
    pub fn route_table(&self) -> Vec<(String, String)> {
        self.router
            .routes()
            .iter()
            .map(|r| {
                (
                    r.pattern.to_string(),
                    self.components[r.component].ctx.id.to_string(),
                )
            })
            .collect()
    }

    /// Recorded instantiation times in microseconds, draining them.
    pub fn take_instantiation_timings(&self) -> Vec<u32> {
        std::mem::take(&mut *self.timings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Serves one request: route, set Spin's headers, run a fresh instance.
    pub async fn handle<B>(
        self: &Arc<Self>,
        mut req: hyper::Request<B>,
        client: SocketAddr,
        listen: SocketAddr,
    ) -> hyper::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let arrived = std::time::Instant::now();
        let ids = RequestIds::settle(req.headers_mut());
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let Some(matched) = self.router.find(&path) else {
            let resp = problem(
                404,
                "not-found",
                "Not Found",
                &format!("no route matches {path}"),
            );
            return self.answered(resp, &ids, None, &method, arrived);
        };
        let route = matched.pattern.clone();
        let component = &self.components[matched.component];

        let at = Addressing {
            host_header: req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok()),
            listen,
            client,
        };
        let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let added = spin_headers(&matched, path_and_query, &at);
        let uri = absolute_uri(req.uri(), &at);
        let headers = req.headers_mut();
        for (name, value) in added {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                headers.insert(n, v);
            }
        }
        if let Some(uri) = uri {
            *req.uri_mut() = uri;
        }

        let resp = match self.invoke(component, req).await {
            Ok(resp) => resp,
            Err(err) => {
                tracing::error!(
                    component = %component.ctx.id,
                    request_id = ids.request_id.to_str().unwrap_or_default(),
                    trace_id = %ids.trace.trace_id_hex(),
                    error = %format!("{err:#}"),
                    "request failed"
                );
                problem(
                    500,
                    "internal",
                    "Internal Server Error",
                    "the function failed to produce a response",
                )
            }
        };
        self.answered(resp, &ids, Some(&route), &method, arrived)
    }

    /// Stamps an answer with the request id, counts it and logs it (at
    /// debug: one line per request is too many for `info`).
    fn answered(
        &self,
        mut resp: hyper::Response<ResponseBody>,
        ids: &RequestIds,
        route: Option<&Arc<str>>,
        method: &http::Method,
        arrived: std::time::Instant,
    ) -> hyper::Response<ResponseBody> {
        let took = arrived.elapsed();
        let status = resp.status().as_u16();
        match route {
            Some(route) => metrics::request(route, method, status, took),
            None => metrics::unmatched(method, status, took),
        }
        tracing::debug!(
            request_id = ids.request_id.to_str().unwrap_or_default(),
            trace_id = %ids.trace.trace_id_hex(),
            %method,
            route = route.map_or(metrics::UNMATCHED, |r| &**r),
            status,
            micros = took.as_micros() as u64,
            "answered"
        );
        resp.headers_mut()
            .insert(request_ids::REQUEST_ID, ids.request_id.clone());
        resp
    }
}
