//! The answers the host gives itself, when no function can: an unknown
//! route, a function that failed to produce a response.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::ResponseBody;

/// An `application/problem+json` response (RFC 9457) produced by the host
/// itself (unknown route, failed function).
pub fn problem(
    status: u16,
    kind: &str,
    title: &str,
    detail: &str,
) -> hyper::Response<ResponseBody> {
    let body = serde_json::json!({
        "type": format!("https://spinmesh.dev/problems/{kind}"),
        "title": title,
        "status": status,
        "detail": detail,
    });
    hyper::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/problem+json")
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap_or_else(|_| {
            hyper::Response::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
        })
}
