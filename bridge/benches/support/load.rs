//! The benchmarks' load generator: closed-loop HTTP/1.1 clients on
//! keep-alive connections, with latency percentiles.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1 as client_http1;
use hyper_util::rt::TokioIo;

/// One case's results.
pub struct Stats {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latencies_us: Vec<u32>,
}

impl Stats {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    pub fn pct(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p) as f64 / 1000.0
    }
}

pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

/// The request every client repeats.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    /// GET, POST, ...
    pub method: http::Method,
    /// Path and query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body (empty for GET).
    pub body: Bytes,
}

impl RequestSpec {
    /// A GET with an optional bearer token.
    pub fn get(path: &str, token: Option<&str>) -> Self {
        Self {
            method: http::Method::GET,
            path: path.to_string(),
            headers: token
                .map(|t| vec![("authorization".to_string(), format!("Bearer {t}"))])
                .unwrap_or_default(),
            body: Bytes::new(),
        }
    }

    /// A JSON POST.
    pub fn post_json(path: &str, body: &serde_json::Value) -> Self {
        Self {
            method: http::Method::POST,
            path: path.to_string(),
            headers: vec![("content-type".to_string(), "application/json".to_string())],
            body: Bytes::from(body.to_string()),
        }
    }
}

/// Closed-loop load: `conns` keep-alive connections, each sending the next
/// request when the previous answer arrives, for `duration`.
pub async fn load(addr: SocketAddr, spec: &RequestSpec, conns: usize, duration: Duration) -> Stats {
    load_each(addr, std::slice::from_ref(spec), conns, duration).await
}

/// Like [`load`], connection `i` repeating `specs[i % specs.len()]`.
pub async fn load_each(
    addr: SocketAddr,
    specs: &[RequestSpec],
    conns: usize,
    duration: Duration,
) -> Stats {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..conns {
        let stop = stop.clone();
        let spec = specs[i % specs.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).ok();
            let (mut sender, conn) = client_http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            while !stop.load(Ordering::Relaxed) {
                let mut req = hyper::Request::builder()
                    .method(spec.method.clone())
                    .uri(&spec.path)
                    .header("host", "bench");
                for (k, v) in &spec.headers {
                    req = req.header(k, v);
                }
                let req = req.body(Full::new(spec.body.clone())).unwrap();
                let t0 = Instant::now();
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        let _ = resp.into_body().collect().await;
                        if ok {
                            lat.push(t0.elapsed().as_micros() as u32);
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    Stats {
        requests: all.len() as u64,
        errors,
        elapsed,
        latencies_us: all,
    }
}

/// Prints one result line.
pub fn row(name: &str, s: &Stats) {
    println!(
        "{name:<34} {:>10.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   errors {}",
        s.rps(),
        s.pct(0.50),
        s.pct(0.99),
        s.errors
    );
}
