//! The HTTP listener: accepts connections and hands each request to the
//! host, and stops gracefully: no new connections, in-flight requests
//! answered, idle keep-alive connections closed.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Host;

/// A bound listener; `serve` runs it until `shutdown` resolves.
pub struct Server {
    listener: TcpListener,
    host: Arc<Host>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port).
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(host: Arc<Host>, addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        Ok(Self { listener, host })
    }

    /// The address actually bound.
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Accepts connections until `stop` is cancelled, each on a task of
    /// `connections`. Once stopped, every connection finishes the request
    /// it is serving and closes; [`TaskTracker::wait`] (after
    /// [`TaskTracker::close`]) tells when they all have.
    ///
    /// # Errors
    /// Only if the listener itself fails.
    pub async fn serve(
        self,
        stop: CancellationToken,
        connections: TaskTracker,
    ) -> anyhow::Result<()> {
        let listen = self.local_addr()?;
        loop {
            let (stream, client) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = stop.cancelled() => return Ok(()),
            };
            let _ = stream.set_nodelay(true);
            let host = self.host.clone();
            let stop = stop.clone();
            connections.spawn(async move {
                let service = service_fn(move |req| {
                    let host = host.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(host.handle(req, client, listen).await)
                    }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(30))
                    .serve_connection(TokioIo::new(stream), service);
                tokio::pin!(connection);
                let ended = tokio::select! {
                    ended = connection.as_mut() => ended,
                    () = stop.cancelled() => {
                        // Finish the request in flight (if any), then close.
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(err) = ended {
                    tracing::debug!(error = %err, %client, "connection ended with an error");
                }
            });
        }
    }
}
