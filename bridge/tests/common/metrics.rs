//! Scraping `GET /metrics` as Prometheus does, and reading samples back.

use std::time::Duration;

use prometheus_parse::{Scrape, Value};

use super::TestApp;
use super::subscriber::eventually;

/// One scrape, parsed.
pub struct Scraped {
    /// The text as served.
    pub text: String,
    parsed: Scrape,
}

impl Scraped {
    /// The value of the sample `name` whose labels include `labels` (the
    /// sum over all of them when several match); `None` when none does.
    /// A histogram's count and sum are the samples `<name>_count` and
    /// `<name>_sum`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let values: Vec<f64> = self
            .parsed
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .filter_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                Value::Histogram(_) | Value::Summary(_) => None,
            })
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// Like [`Scraped::value`], 0 when absent (a counter nothing has
    /// incremented yet).
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }
}

/// Scrapes `url`, asserting the answer is Prometheus text.
pub async fn scrape(url: &str) -> Scraped {
    let resp = reqwest::get(url).await.expect("the admin listener answers");
    assert_eq!(resp.status(), 200, "GET {url}");
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text");
    Scraped { text, parsed }
}

impl TestApp {
    /// `GET /metrics` on the app's admin listener.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.admin.expect("the admin listener"))
    }

    /// The app's metrics now.
    pub async fn metrics(&self) -> Scraped {
        scrape(&self.metrics_url()).await
    }
}

/// Scrapes `url` until `wanted` holds, and returns that scrape; panics
/// naming `what` (with the last scrape) when it never does.
pub async fn metrics_when(url: &str, what: &str, wanted: impl Fn(&Scraped) -> bool) -> Scraped {
    let last = std::sync::Mutex::new(None);
    eventually(what, Duration::from_secs(60), || async {
        let scraped = scrape(url).await;
        let done = wanted(&scraped);
        *last.lock().unwrap() = Some(scraped);
        done
    })
    .await;
    last.into_inner().unwrap().expect("scraped at least once")
}
