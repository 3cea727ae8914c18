//! The process's Prometheus metrics and the admin listener that serves
//! them (`GET /metrics`), apart from the application's listener so that
//! scraping needs no route in the app and the app's clients cannot read
//! it (it binds 127.0.0.1 unless told otherwise).
//!
//! The host and the event path record through the `metrics` facade
//! ([`spinmesh_host::metrics`], [`spinmesh_events::metrics`]); this module
//! installs the one recorder they record into, once per process, and
//! renders it in the Prometheus text format.

use std::net::SocketAddr;
use std::sync::OnceLock;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where `bridge up` and `bridge relay` serve metrics unless told otherwise.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9464";

/// Buckets of the request latency histogram, in seconds: a component
/// answers in tens of microseconds to tens of milliseconds, a slow one in
/// seconds.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of the delivery latency histogram, in seconds: milliseconds
/// when events flow, minutes when retries or an outage hold them.
const DELIVERY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// The process's recorder, installed on first use; later calls (a second
/// app in the same process: tests, benchmarks) share it.
///
/// # Errors
/// When another recorder was installed first.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(spinmesh_host::metrics::HTTP_DURATION.into()),
            REQUEST_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(spinmesh_events::metrics::DELIVERY_LATENCY.into()),
            DELIVERY_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    // Two apps starting at once: the loser's recorder is dropped and both
    // use the winner's.
    match HANDLE.set(handle) {
        Ok(()) => {
            metrics::set_global_recorder(recorder)
                .map_err(|_| anyhow::anyhow!("a metrics recorder was installed elsewhere"))?;
            spinmesh_host::metrics::describe();
            spinmesh_events::metrics::describe();
        }
        Err(_) => drop(recorder),
    }
    Ok(HANDLE.get().expect("set above").clone())
}

/// The admin listener, bound.
pub struct AdminListener {
    listener: TcpListener,
    handle: PrometheusHandle,
}

impl AdminListener {
    /// Installs the recorder ([`recorder`]) and binds `addr`.
    ///
    /// # Errors
    /// When the address cannot be bound or the recorder installed.
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let handle = recorder()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the admin listener on {addr}"))?;
        Ok(Self { listener, handle })
    }

    /// The address actually bound.
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves `GET /metrics` until `stop`; connections live on
    /// `connections`, so a shutdown waits for a scrape in progress.
    pub async fn serve(self, stop: CancellationToken, connections: TaskTracker) {
        loop {
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        tracing::warn!(error = %err, "admin listener: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = stop.cancelled() => return,
            };
            let handle = self.handle.clone();
            connections.spawn(async move {
                let service = service_fn(move |req| {
                    let answer = answer(&handle, &req);
                    async move { Ok::<_, std::convert::Infallible>(answer) }
                });
                let served = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(err) = served {
                    tracing::debug!(error = %err, "admin connection ended with an error");
                }
            });
        }
    }
}

/// `GET /metrics` (or `HEAD`): the text format; anything else 404 or 405.
fn answer<B>(handle: &PrometheusHandle, req: &hyper::Request<B>) -> hyper::Response<Full<Bytes>> {
    let respond = |status: u16, content_type: &str, body: String| {
        hyper::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    if req.uri().path() != "/metrics" {
        return respond(
            404,
            "text/plain",
            "not found: the admin listener serves /metrics\n".into(),
        );
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        let mut resp = respond(405, "text/plain", "method not allowed\n".into());
        resp.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        return resp;
    }
    // Histograms' buckets are folded in here rather than by a timer task.
    handle.run_upkeep();
    respond(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        handle.render(),
    )
}

/// `--admin-listen`: an address, or `off` (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminListen(pub Option<SocketAddr>);

impl std::str::FromStr for AdminListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        s.parse().map(|at| Self(Some(at))).map_err(|_| {
            format!("expected an address such as {DEFAULT_ADMIN_LISTEN}, or `off`; got {s:?}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_listen_is_an_address_or_off() {
        assert_eq!("off".parse(), Ok(AdminListen(None)));
        assert_eq!(
            DEFAULT_ADMIN_LISTEN.parse(),
            Ok(AdminListen(Some(DEFAULT_ADMIN_LISTEN.parse().unwrap())))
        );
        assert!("9464".parse::<AdminListen>().is_err());
    }

    /// The dashboard in `ops/grafana` charts only what the bridge exports
    /// (histograms through their `_bucket` series), and every metric.
    #[test]
    fn the_dashboard_charts_every_exported_metric_and_nothing_else() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/grafana/spinmesh.json");
        let text = std::fs::read_to_string(path).expect("the dashboard");
        let dashboard: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let exported: Vec<&str> = spinmesh_host::metrics::NAMES
            .iter()
            .chain(spinmesh_events::metrics::NAMES)
            .copied()
            .collect();
        let mut charted = std::collections::BTreeSet::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap();
                for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                    if word.starts_with("spinmesh_") {
                        let name = word.strip_suffix("_bucket").unwrap_or(word);
                        assert!(exported.contains(&name), "{name} is not exported");
                        charted.insert(name.to_owned());
                    }
                }
            }
        }
        for name in exported {
            assert!(charted.contains(name), "{name} is not charted");
        }
    }
}
