//! Outgoing `wasi:http` requests, checked against `allowed_outbound_hosts`.

use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::outbound::{OutboundPolicy, Target};

/// The hooks wasi-http calls for each outgoing request of one instance.
pub struct OutboundHttp {
    policy: Arc<OutboundPolicy>,
}

impl OutboundHttp {
    /// Hooks enforcing `policy`.
    pub fn new(policy: Arc<OutboundPolicy>) -> Self {
        Self { policy }
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        let target = Target { scheme, host, port };
        if !self.policy.allows(&target) {
            tracing::warn!(
                target = %format!("{}://{}:{}", target.scheme, target.host, target.port),
                "outbound request denied: not in allowed_outbound_hosts"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        WasiHttpHooks::send_request(&mut DefaultSend, request, options, fut)
    }
}

/// wasi-http's own sender, reached through its default trait method.
struct DefaultSend;

impl WasiHttpHooks for DefaultSend {}
