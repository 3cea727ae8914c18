//! Delivering an event, or a batch of events, to a function: in-process
//! through the embedded host, or over HTTP to a remote Spin host
//! (`spin up`, a cloud host).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::event::{
    BATCH_CONTENT_TYPE, BATCH_SIGNATURE_ID, OutboxEvent, SIGNATURE_HEADER, Signer, unix_now,
};
use super::outcome::{Attempt, parse_retry_after};
use spinmesh_delivery::trace::TRACEPARENT;
use spinmesh_host::Host;

/// Where deliveries go.
#[derive(Clone)]
pub enum Invoker {
    /// The functions run in this process.
    Embedded(Arc<Host>),
    /// The functions run behind `base_url` (e.g. `http://127.0.0.1:3000`).
    Http {
        /// Scheme, host and port of the Spin host.
        base_url: String,
        /// A pooled HTTP/1 client.
        client: Client<HttpConnector, Full<Bytes>>,
    },
}

impl Invoker {
    /// An HTTP invoker for a remote Spin host.
    pub fn http(base_url: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Self::Http {
            base_url: base_url.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// POSTs `event` to `route` as a signed CloudEvent and reports how the
    /// function answered. Never fails: every failure is an [`Attempt`].
    pub async fn deliver(
        &self,
        route: &str,
        event: &OutboxEvent,
        signer: &Signer,
        timeout: Duration,
    ) -> Attempt {
        let body = Bytes::from(event.data.clone());
        let signature = signer.sign(unix_now(), &event.id.to_string(), &body);
        self.post(route, event.headers(), signature, body, timeout)
            .await
    }

    /// POSTs `events` to `route` as one signed CloudEvents batch (a JSON
    /// array of structured events, signed over `t.batch.body`).
    pub async fn deliver_batch(
        &self,
        route: &str,
        events: &[OutboxEvent],
        signer: &Signer,
        timeout: Duration,
    ) -> Attempt {
        let array: Vec<serde_json::Value> = events.iter().map(OutboxEvent::structured).collect();
        let body = match serde_json::to_vec(&array) {
            Ok(b) => Bytes::from(b),
            Err(e) => return failed(format!("encoding the batch: {e}")),
        };
        let signature = signer.sign(unix_now(), BATCH_SIGNATURE_ID, &body);
        let mut headers = vec![("content-type", BATCH_CONTENT_TYPE.to_string())];
        // Each event carries its own trace in the batch; the request, which
        // can name one, continues the first's (what its handler's log
        // lines and the events it writes are traced as).
        if let Some(trace) = events.iter().find_map(|e| e.traceparent.clone()) {
            headers.push((TRACEPARENT, trace));
        }
        self.post(route, headers, signature, body, timeout).await
    }

    async fn post(
        &self,
        route: &str,
        headers: Vec<(&'static str, String)>,
        signature: String,
        body: Bytes,
        timeout: Duration,
    ) -> Attempt {
        let uri = match self {
            Invoker::Embedded(_) => route.to_string(),
            Invoker::Http { base_url, .. } => format!("{base_url}{route}"),
        };
        let mut builder = hyper::Request::post(uri).header(SIGNATURE_HEADER, signature);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if let Invoker::Embedded(_) = self {
            builder = builder.header(http::header::HOST, "bridge.internal");
        }
        let request = match builder.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => return failed(format!("building the request: {e}")),
        };
        let sent = async {
            match self {
                Invoker::Embedded(host) => {
                    let local = SocketAddr::from(([127, 0, 0, 1], 0));
                    Ok(read_whole(host.handle(request, local, local).await).await)
                }
                Invoker::Http { client, .. } => {
                    let resp = client.request(request).await.map_err(|e| format!("{e}"))?;
                    Ok(read_whole(resp).await)
                }
            }
        };
        match tokio::time::timeout(timeout, sent).await {
            Err(_) => failed(format!("no answer within {timeout:?}")),
            Ok(Err(e)) => failed(e),
            Ok(Ok((parts, body))) => {
                let status = parts.status.as_u16();
                let retry_after = parts
                    .headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let error = (!parts.status.is_success()).then(|| {
                    let text = String::from_utf8_lossy(&body);
                    let text: String = text.chars().take(1024).collect();
                    format!("HTTP {status}: {text}")
                });
                Attempt::answered(status, retry_after, error)
            }
        }
    }
}

/// The head and the whole body (an unreadable body counts as empty: the
/// status decides the outcome).
async fn read_whole<B: http_body::Body>(
    resp: hyper::Response<B>,
) -> (http::response::Parts, Bytes) {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (parts, body)
}

fn failed(error: String) -> Attempt {
    Attempt::failed(error)
}
