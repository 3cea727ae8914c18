//! The embedded Spin host: wasmtime, the Spin interfaces, HTTP routing.
//!
//! Heavy work happens once in [`Host::new`]: one engine, one linker, every
//! component compiled (or mapped from the compile cache) and pre-linked.
//! Per request, [`Host::handle`] only creates a small `Store`, instantiates
//! from the pre-linked component into a pooled slot and calls the guest.

pub mod engine;
mod key_value;
pub mod outbound;
mod outbound_http;
pub mod outbox_writes;
mod postgres;
mod redis;
pub mod router;
pub mod server;
pub mod services;
mod spin_variables;
mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tokio::sync::Semaphore;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimitsBuilder};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use crate::manifest::{Manifest, RouteDecl};
use crate::variables::{AppVariables, component_variables};
use outbound::OutboundPolicy;
use outbound_http::OutboundHttp;
pub use postgres::PgCompat;
use router::Router;
use services::{PoolConfig, Services};
pub use state::{ComponentContext, InstanceState};

/// Bindings for the Spin interfaces in `wit/` (everything but WASI).
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
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

/// A component ready to instantiate.
struct LoadedComponent {
    ctx: Arc<ComponentContext>,
    pre: ProxyPre<InstanceState>,
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
    /// Loads the application: resolves variables, compiles (or loads from
    /// cache) and pre-links every component, builds the route table.
    ///
    /// # Errors
    /// When a variable is missing, a component cannot be loaded or linked
    /// (for instance it imports an interface Spin does not provide), or the
    /// routes conflict.
    pub fn new(manifest: &Manifest, config: HostConfig) -> anyhow::Result<Arc<Self>> {
        let doc = &manifest.doc;
        let app_vars =
            AppVariables::resolve(doc, &config.variable_overrides, |k| std::env::var(k).ok())?;
        let engine = engine::build_engine(&config)?;
        engine::spawn_epoch_ticker(&engine);

        let mut linker: Linker<InstanceState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI")?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking wasi:http")?;
        bindings::Host_::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("linking Spin interfaces")?;

        let mut ids: Vec<&String> = doc.trigger.http.iter().map(|t| &t.component).collect();
        ids.sort();
        ids.dedup();

        let mut components = Vec::new();
        for id in &ids {
            let decl = &doc.component[*id];
            let path = manifest.source_path(id, decl)?;
            let component = engine::load_component(&engine, &path, config.cache_dir.as_deref())
                .with_context(|| format!("component {id}"))?;
            let instance_pre = linker
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "component {id}: imports something this host (and Spin) does not provide"
                    )
                })?;
            let pre = ProxyPre::new(instance_pre)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("component {id} does not export wasi:http/incoming-handler")
                })?;
            let ctx = ComponentContext {
                id: (*id).clone(),
                variables: component_variables(&app_vars, &decl.variables)
                    .with_context(|| format!("component {id}"))?,
                environment: decl.environment.clone().into_iter().collect(),
                outbound: Arc::new(
                    OutboundPolicy::parse(&decl.allowed_outbound_hosts)
                        .with_context(|| format!("component {id}"))?,
                ),
                key_value_stores: decl.key_value_stores.clone(),
            };
            components.push(LoadedComponent {
                ctx: Arc::new(ctx),
                pre,
            });
        }

        let routes = doc.trigger.http.iter().filter_map(|t| match &t.route {
            RouteDecl::Path(p) => {
                let idx = ids.iter().position(|id| **id == t.component)?;
                Some((p.clone(), idx))
            }
            RouteDecl::Private { .. } => None,
        });
        let router = Router::new(routes.collect::<Vec<_>>())?;

        Ok(Arc::new(Self {
            engine,
            components,
            router,
            services: Services::new(config.pools.clone())?,
            permits: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
            timings: Arc::default(),
            app_name: doc.application.name.clone(),
            app_vars,
            config,
        }))
    }

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
            .map(|m| self.components[m.component].ctx.id.as_str())
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
                    r.pattern.clone(),
                    self.components[r.component].ctx.id.clone(),
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
        let path = req.uri().path().to_string();
        let Some(matched) = self.router.find(&path) else {
            return problem(
                404,
                "not-found",
                "Not Found",
                &format!("no route matches {path}"),
            );
        };
        let component = &self.components[matched.component];

        let headers = req.headers_mut();
        let host_header = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map_or_else(|| listen.to_string(), str::to_string);
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let full_url = format!("http://{host_header}{path_and_query}");
        let headers = req.headers_mut();
        let mut set = |name: &str, value: &str| {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                headers.insert(n, v);
            }
        };
        set("spin-full-url", &full_url);
        set("spin-path-info", &matched.path_info);
        set("spin-matched-route", matched.pattern);
        set("spin-raw-component-route", matched.pattern);
        set("spin-component-route", &matched.component_route);
        set("spin-base-path", "/");
        set("spin-client-addr", &client.to_string());
        for (name, value) in &matched.params {
            set(&format!("spin-path-match-{name}"), value);
        }
        // wasi-http wants an absolute URI (scheme + authority).
        let mut parts = req.uri().clone().into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = host_header
            .parse()
            .ok()
            .or_else(|| listen.to_string().parse().ok());
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }

        match self.invoke(component, req).await {
            Ok(resp) => resp,
            Err(err) => {
                tracing::error!(component = %component.ctx.id, error = %format!("{err:#}"), "request failed");
                problem(
                    500,
                    "internal",
                    "Internal Server Error",
                    "the function failed to produce a response",
                )
            }
        }
    }

    async fn invoke<B>(
        &self,
        component: &LoadedComponent,
        req: hyper::Request<B>,
    ) -> anyhow::Result<hyper::Response<ResponseBody>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .context("host shutting down")?;
        let head_request = req.method() == http::Method::HEAD;
        let mut store = self.new_store(&component.ctx);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (req, out) = {
            let mut http = wasmtime_wasi_http::WasiHttpView::http(store.data_mut());
            (
                http.new_incoming_request(Scheme::Http, req)?,
                http.new_response_outparam(sender)?,
            )
        };
        let pre = component.pre.clone();
        let timings = self.config.record_timings.then(|| self.timings.clone());
        let task = tokio::spawn(async move {
            // The slot is held while the instance lives, body streaming included.
            let _permit = permit;
            let started = Instant::now();
            let proxy = pre.instantiate_async(&mut store).await?;
            if let Some(timings) = timings {
                let micros = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
                timings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(micros);
            }
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await?;
            anyhow::Ok(())
        });
        match receiver.await {
            Ok(Ok(resp)) if head_request => {
                Ok(resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
            }
            Ok(Ok(resp)) => Ok(coalesce_body(resp).await),
            Ok(Err(code)) => anyhow::bail!("guest returned error code {code:?}"),
            Err(_) => match task.await {
                Ok(Ok(_)) => anyhow::bail!("guest never set a response"),
                Ok(Err(e)) => Err(e.context("guest trapped")),
                Err(e) => Err(anyhow::anyhow!(e).context("guest task failed")),
            },
        }
    }

    fn new_store(&self, ctx: &Arc<ComponentContext>) -> Store<InstanceState> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stdout().inherit_stderr();
        wasi.envs(&ctx.environment);
        wasi.allow_ip_name_lookup(false);
        let state = InstanceState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.config.max_memory_bytes)
                .instances(64)
                .tables(64)
                .memories(8)
                .build(),
            outbound_http: OutboundHttp::new(ctx.outbound.clone()),
            component: ctx.clone(),
            services: self.services.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let ticks = self
            .config
            .request_timeout
            .as_millis()
            .div_ceil(engine::EPOCH_TICK.as_millis())
            .max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }
}

/// Bodies up to this size are collected before the response is sent.
const COALESCE_LIMIT: usize = 64 << 10;

/// Sends small bodies in one piece.
///
/// A Spin guest sets its response before it writes the body, so hyper would
/// otherwise flush the head, then each chunk, then the chunked terminator:
/// several syscalls and packets for a 100-byte JSON answer. Collecting up to
/// [`COALESCE_LIMIT`] first lets the whole answer leave in one write with a
/// `content-length`; a larger body streams as before, nothing lost.
async fn coalesce_body(
    resp: hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>,
) -> hyper::Response<ResponseBody> {
    let (mut parts, mut body) = resp.into_parts();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    loop {
        match body.frame().await {
            None => {
                let mut whole = bytes::BytesMut::with_capacity(size);
                chunks.iter().for_each(|c| whole.extend_from_slice(c));
                parts.headers.remove(http::header::TRANSFER_ENCODING);
                let bodiless = parts.status.is_informational()
                    || parts.status == http::StatusCode::NO_CONTENT
                    || parts.status == http::StatusCode::NOT_MODIFIED;
                if !bodiless {
                    parts
                        .headers
                        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(size));
                }
                let full = Full::new(whole.freeze()).map_err(|never| match never {});
                return hyper::Response::from_parts(parts, full.boxed_unsync());
            }
            Some(Ok(frame)) if frame.is_data() && size < COALESCE_LIMIT => {
                if let Ok(data) = frame.into_data() {
                    size += data.len();
                    chunks.push(data);
                }
            }
            // Trailers, an error, or too large: stream what we have and the rest.
            Some(frame) => {
                let head = chunks.into_iter().map(|c| Ok(http_body::Frame::data(c)));
                let first = std::iter::once(frame.map_err(|e| Box::new(e) as BoxError));
                let rest =
                    http_body_util::BodyStream::new(body.map_err(|e| Box::new(e) as BoxError));
                let stream = futures::stream::iter(head.chain(first)).chain(rest);
                return hyper::Response::from_parts(
                    parts,
                    http_body_util::StreamBody::new(stream).boxed_unsync(),
                );
            }
        }
    }
}

/// An `application/problem+json` response (RFC 9457) produced by the host
/// itself (unknown route, failed function).
pub fn problem(
    status: u16,
    kind: &str,
    title: &str,
    detail: &str,
) -> hyper::Response<ResponseBody> {
    let body = serde_json::json!({
        "type": format!("https://spinmesh.dev/problems/{kind}"),
        "title": title,
        "status": status,
        "detail": detail,
    });
    hyper::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/problem+json")
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap_or_else(|_| {
            hyper::Response::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
        })
}
