//! What one instance (one request) can reach: its WASI context, resource
//! table, memory limits, and the shared services behind Spin's interfaces.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::outbound::OutboundPolicy;
use super::outbound_http::OutboundHttp;
use super::services::Services;

/// Per-component settings fixed at start: rendered variables, allowlists.
#[derive(Debug)]
pub struct ComponentContext {
    /// The component id from `spin.toml`.
    pub id: Arc<str>,
    /// Component variables with templates rendered.
    pub variables: HashMap<String, String>,
    /// Environment variables given to the guest.
    pub environment: Vec<(String, String)>,
    /// Where the component may connect.
    pub outbound: Arc<OutboundPolicy>,
    /// Key-value store labels the component may open.
    pub key_value_stores: Vec<String>,
}

/// The `T` of `Store<T>`: everything a single instance touches.
pub struct InstanceState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub(crate) outbound_http: OutboundHttp,
    pub(crate) component: Arc<ComponentContext>,
    pub(crate) services: Arc<Services>,
    /// Postgres connections the guest holds open (capped per instance).
    pub(crate) pg_open: usize,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound_http,
        }
    }
}
