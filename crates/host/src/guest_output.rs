//! A guest's stdout and stderr: the bridge's own, each line prefixed with
//! the component and the request id (`[auth 4f1c…] line`), so lines of
//! concurrent requests can be told apart and followed.
//!
//! Lines are written whole, under the stream's lock, so concurrent guests
//! never interleave within a line. A line still open when the guest drops
//! its stream (or longer than [`MAX_LINE`]) is written as it is.

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use spinmesh_delivery::trace::{TRACEPARENT, Traceparent};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::request_ids::{REQUEST_ID, sane_request_id};

/// Longest line kept back waiting for its newline.
pub const MAX_LINE: usize = 16 * 1024;

/// Which of the bridge's streams a guest stream goes to.
#[derive(Debug, Clone)]
pub enum Stdio {
    /// The bridge's stdout.
    Stdout,
    /// The bridge's stderr.
    Stderr,
    /// A buffer (the unit tests).
    #[cfg(test)]
    Memory(Arc<std::sync::Mutex<Vec<u8>>>),
}

impl Stdio {
    fn write_all(&self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Stdout => std::io::stdout().lock().write_all(bytes),
            Self::Stderr => std::io::stderr().lock().write_all(bytes),
            #[cfg(test)]
            Self::Memory(buffer) => {
                buffer.lock().unwrap().extend_from_slice(bytes);
                Ok(())
            }
        }
    }
}

/// Names one request in its guest's output. Built on the guest's first
/// write: most requests print nothing and pay for no formatting.
pub struct Label {
    component: Arc<str>,
    /// The request's `x-request-id` (see [`RequestIds`]), if it has one.
    given: Option<http::HeaderValue>,
    /// Its `traceparent`, if any.
    trace: Option<http::HeaderValue>,
    prefix: OnceLock<Arc<str>>,
}

impl Label {
    /// The label of a request for `component` carrying `headers`.
    pub fn new(component: Arc<str>, headers: &http::HeaderMap) -> Arc<Self> {
        Arc::new(Self {
            component,
            given: headers.get(REQUEST_ID).cloned(),
            trace: headers.get(TRACEPARENT).cloned(),
            prefix: OnceLock::new(),
        })
    }

    /// `[component request-id trace=<trace id>] `: the client's sane
    /// request id (an HTTP request always has one, see [`RequestIds`]) or
    /// a fresh one (an event delivery); the trace when the request
    /// carries a valid one.
    fn prefix(&self) -> Arc<str> {
        self.prefix
            .get_or_init(|| {
                let id = self
                    .given
                    .as_ref()
                    .filter(|v| sane_request_id(v.as_bytes()))
                    .and_then(|v| v.to_str().ok())
                    .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
                let trace = self
                    .trace
                    .as_ref()
                    .and_then(|v| v.to_str().ok())
                    .and_then(Traceparent::parse)
                    .map(|t| format!(" trace={}", t.trace_id_hex()))
                    .unwrap_or_default();
                format!("[{} {id}{trace}] ", self.component).into()
            })
            .clone()
    }
}

/// One instance's stdout or stderr.
#[derive(Clone)]
pub struct GuestOutput {
    label: Arc<Label>,
    to: Stdio,
}

impl GuestOutput {
    /// Output of the request `label` names, to `to`.
    pub fn new(label: Arc<Label>, to: Stdio) -> Self {
        Self { label, to }
    }

    fn writer(&self) -> Lines {
        Lines {
            label: self.label.clone(),
            to: self.to.clone(),
            open: Vec::new(),
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }
}

/// Splits what a guest writes into prefixed lines.
struct Lines {
    label: Arc<Label>,
    to: Stdio,
    /// The line being written, not yet ended by a newline.
    open: Vec<u8>,
}

impl Lines {
    /// Takes `bytes`, writing out every line they complete.
    fn push(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        let mut out = Vec::new();
        let prefix = self.label.prefix();
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.line(&mut out, &prefix, &bytes[..end]);
            bytes = &bytes[end + 1..];
        }
        self.open.extend_from_slice(bytes);
        if self.open.len() >= MAX_LINE {
            self.line(&mut out, &prefix, &[]);
        }
        if out.is_empty() {
            return Ok(());
        }
        self.to.write_all(&out)
    }

    /// Appends the open line plus `rest` to `out`, prefixed and ended.
    fn line(&mut self, out: &mut Vec<u8>, prefix: &str, rest: &[u8]) {
        out.extend_from_slice(prefix.as_bytes());
        out.append(&mut self.open);
        out.extend_from_slice(rest);
        out.push(b'\n');
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if !self.open.is_empty() {
            let mut out = Vec::new();
            let prefix = self.label.prefix();
            self.line(&mut out, &prefix, &[]);
            let _ = self.to.write_all(&out);
        }
    }
}

impl OutputStream for Lines {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes)
            .map_err(|e| StreamError::LastOperationFailed(e.into()))
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Lines are written as they end; an open line waits for its end.
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for Lines {
    async fn ready(&mut self) {}
}

impl AsyncWrite for Lines {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.push(buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture() -> (GuestOutput, Arc<std::sync::Mutex<Vec<u8>>>) {
        let buffer = Arc::default();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-request-id", "req-7".parse().unwrap());
        let label = Label::new("auth".into(), &headers);
        let out = GuestOutput::new(label, Stdio::Memory(Arc::clone(&buffer)));
        (out, buffer)
    }

    #[test]
    fn the_label_names_the_trace_when_there_is_one() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-request-id", "two words".parse().unwrap());
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let prefix = Label::new("orders".into(), &headers).prefix();
        assert!(prefix.starts_with("[orders "), "{prefix}");
        assert!(
            prefix.ends_with(" trace=4bf92f3577b34da6a3ce929d0e0e4736] "),
            "{prefix}"
        );
        assert_eq!(
            prefix.len(),
            "[orders ".len() + 32 + " trace=".len() + 32 + 2,
            "an insane id replaced: {prefix}"
        );
    }

    fn text(buffer: &std::sync::Mutex<Vec<u8>>) -> String {
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn every_line_is_prefixed_and_lines_split_across_writes_join() {
        let (out, buffer) = capture();
        let mut lines = out.writer();
        lines.push(b"first\nsec").unwrap();
        assert_eq!(text(&buffer), "[auth req-7] first\n", "an open line waits");
        lines.push(b"ond\n\nthird").unwrap();
        assert_eq!(
            text(&buffer),
            "[auth req-7] first\n[auth req-7] second\n[auth req-7] \n"
        );
        drop(lines);
        assert!(
            text(&buffer).ends_with("[auth req-7] third\n"),
            "the open line is written when the stream goes"
        );
    }

    #[test]
    fn a_line_without_end_is_cut_at_the_limit() {
        let (out, buffer) = capture();
        let mut lines = out.writer();
        lines.push(&vec![b'x'; MAX_LINE + 10]).unwrap();
        let written = text(&buffer);
        assert!(written.starts_with("[auth req-7] xxx"));
        assert_eq!(written.len(), "[auth req-7] ".len() + MAX_LINE + 10 + 1);
        assert!(lines.open.is_empty());
    }
}
