//! An HTTP receiver on loopback standing in for an SMS gateway (and for
//! the webhook channel's target): it records every request and answers
//! with the statuses it is given, in order, then 200.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its `Authorization` header.
    pub authorization: Option<String>,
    /// Its `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// Its body, as JSON.
    pub body: Value,
}

/// The receiver; stops when dropped.
pub struct Gateway {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    /// Answers `statuses` to the first requests, then 200.
    pub async fn start(statuses: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answers = Arc::new(Mutex::new(
            statuses.iter().copied().collect::<VecDeque<_>>(),
        ));
        let (log, script) = (received.clone(), answers.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, script) = (log.clone(), script.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (log, script) = (log.clone(), script.clone());
                        async move {
                            let header = |name: &str| {
                                req.headers()
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned)
                            };
                            let (authorization, idempotency_key) =
                                (header("authorization"), header("idempotency-key"));
                            let bytes = req.into_body().collect().await?.to_bytes();
                            log.lock().unwrap().push(Received {
                                authorization,
                                idempotency_key,
                                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                            });
                            let status = script.lock().unwrap().pop_front().unwrap_or(200);
                            Ok::<_, hyper::Error>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            port,
            received,
            task,
        }
    }

    /// Where it listens, as a URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/sms", self.port)
    }

    /// What it received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}
