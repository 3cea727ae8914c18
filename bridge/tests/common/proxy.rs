//! A TCP proxy in front of a shared server (Postgres, Redis) that a test
//! can stop and start again: to the app behind it, the server goes away
//! (connections cut, new ones refused) and comes back on the same address,
//! while every other test keeps using the real server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A stoppable proxy on a fixed loopback port.
pub struct Proxy {
    pub port: u16,
    upstream: SocketAddr,
    running: Arc<Mutex<Option<JoinSet<()>>>>,
}

impl Proxy {
    /// Proxies a free loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            upstream,
            running: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let upstream = self.upstream;
        tasks.spawn(async move {
            // Aborting this task (stop) drops the listener and this set,
            // which aborts every connection it accepted.
            let connections = Mutex::new(JoinSet::new());
            while let Ok((mut client, _)) = listener.accept().await {
                connections.lock().unwrap().spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        *self.running.lock().unwrap() = Some(tasks);
    }

    /// The server "goes away": the listener closes and every connection
    /// through the proxy is cut.
    pub fn stop(&self) {
        // Dropping the JoinSets aborts their tasks, which drops the sockets.
        self.running.lock().unwrap().take();
    }

    /// The server "comes back" on the same port.
    pub async fn resume(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}
