//! Who a request is, for the logs and for whatever it causes: its request
//! id and its W3C trace context, settled once on arrival and written back
//! into the request's headers, so the guest, its output's labels and the
//! events it writes (through `kit::trace`) all see the same ones.

use http::{HeaderMap, HeaderValue};
use spinmesh_delivery::trace::{TRACEPARENT, Traceparent};

/// The request id header, echoed in every answer.
pub const REQUEST_ID: &str = "x-request-id";

/// A request's ids.
#[derive(Debug, Clone)]
pub struct RequestIds {
    /// The client's sane `x-request-id`, or a fresh one.
    pub request_id: HeaderValue,
    /// The trace the request belongs to: the client's `traceparent`, or
    /// a new trace started here.
    pub trace: Traceparent,
}

impl RequestIds {
    /// Settles the ids of a request with `headers` and writes them back:
    /// `x-request-id` is set (kept when sane), `traceparent` kept when
    /// valid and replaced by a new trace when missing or malformed.
    pub fn settle(headers: &mut HeaderMap) -> Self {
        let request_id = headers
            .get(REQUEST_ID)
            .filter(|v| sane_request_id(v.as_bytes()))
            .cloned()
            .unwrap_or_else(fresh_request_id);
        let given = headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(Traceparent::parse);
        let trace = given.unwrap_or_else(|| {
            Traceparent::start(
                fastrand::u128(..).to_le_bytes(),
                fastrand::u64(..).to_le_bytes(),
            )
        });
        if given.is_none() {
            let value = HeaderValue::from_str(&trace.to_string()).expect("hex and dashes");
            headers.insert(TRACEPARENT, value);
        }
        headers.insert(REQUEST_ID, request_id.clone());
        Self { request_id, trace }
    }
}

/// 1–128 visible ASCII characters: safe to log and to echo.
pub fn sane_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic)
}

/// 32 random hex digits (an id, not a secret: the thread's fast generator
/// rather than a system call per request).
fn fresh_request_id() -> HeaderValue {
    HeaderValue::from_str(&format!("{:032x}", fastrand::u128(..))).expect("hex")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_request_id_and_a_valid_trace_are_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, "req-7".parse().unwrap());
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert(TRACEPARENT, parent.parse().unwrap());
        let ids = RequestIds::settle(&mut headers);
        assert_eq!(ids.request_id, "req-7");
        assert_eq!(ids.trace.to_string(), parent);
        assert_eq!(headers[TRACEPARENT], parent);
    }

    #[test]
    fn anything_else_is_replaced_and_written_back() {
        for (id, trace) in [
            ("", "garbage"),
            (
                "two words",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            (&*"x".repeat(129), ""),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(REQUEST_ID, id.parse().unwrap());
            headers.insert(TRACEPARENT, trace.parse().unwrap());
            let ids = RequestIds::settle(&mut headers);
            assert_eq!(ids.request_id.len(), 32, "{id:?}");
            assert_eq!(headers[REQUEST_ID], ids.request_id);
            let written = headers[TRACEPARENT].to_str().unwrap();
            assert_eq!(Traceparent::parse(written), Some(ids.trace), "{trace:?}");
        }
        let (mut a, mut b) = (HeaderMap::new(), HeaderMap::new());
        assert_ne!(
            RequestIds::settle(&mut a).trace.trace_id,
            RequestIds::settle(&mut b).trace.trace_id
        );
    }
}
