//! One request's instance: a fresh store with its limits and deadline,
//! instantiated from the pre-linked component into a pooled slot, and the
//! guest's answer.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::BodyExt;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimitsBuilder};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use crate::body::coalesce_body;
use crate::guest_output::{GuestOutput, Label, Stdio};
use crate::load::LoadedComponent;
use crate::outbound_http::OutboundHttp;
use crate::{BoxError, ComponentContext, Host, InstanceState, ResponseBody, engine, metrics};

impl Host {
    pub(crate) async fn invoke<B>(
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
        let label = Label::new(component.ctx.id.clone(), req.headers());
        let mut store = self.new_store(&component.ctx, label);
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
        let id = component.ctx.id.clone();
        let task = tokio::spawn(async move {
            // The slot is held while the instance lives, body streaming included.
            let _permit = permit;
            let started = Instant::now();
            let proxy = pre.instantiate_async(&mut store).await?;
            metrics::instantiated(&id);
            if let Some(timings) = timings {
                let micros = started.elapsed().as_micros().min(u32::MAX as u128) as u32;
                timings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(micros);
            }
            // Counted here, not where the answer is awaited: a guest can
            // trap or run out of time after its answer's head went out.
            let handled = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await;
            if let Err(err) = &handled {
                metrics::failed(&id, err);
            }
            handled?;
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

    fn new_store(&self, ctx: &Arc<ComponentContext>, label: Arc<Label>) -> Store<InstanceState> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(GuestOutput::new(label.clone(), Stdio::Stdout))
            .stderr(GuestOutput::new(label, Stdio::Stderr));
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
            pg_open: 0,
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
