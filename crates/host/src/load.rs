//! Loading an application: variables resolved, every component compiled
//! (or mapped from the compile cache) and pre-linked against Spin's
//! interfaces, the route table built. All of it once, at start.

use std::sync::Arc;

use anyhow::Context;
use spinmesh_config::manifest::{Manifest, RouteDecl};
use spinmesh_config::variables::{AppVariables, component_variables};
use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::outbound::OutboundPolicy;
use crate::router::Router;
use crate::services::Services;
use crate::{ComponentContext, Host, HostConfig, InstanceState, bindings, engine};

/// A component ready to instantiate.
pub(crate) struct LoadedComponent {
    pub(crate) ctx: Arc<ComponentContext>,
    pub(crate) pre: ProxyPre<InstanceState>,
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
                id: id.as_str().into(),
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
}
