//! Shaping the guest's response body for the wire.

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};

use crate::{BoxError, ResponseBody};

/// Bodies up to this size are collected before the response is sent.
const COALESCE_LIMIT: usize = 64 << 10;

/// Sends small bodies in one piece.
///
/// A Spin guest sets its response before it writes the body, so hyper would
/// otherwise flush the head, then each chunk, then the chunked terminator:
/// several syscalls and packets for a 100-byte JSON answer. Collecting up to
/// [`COALESCE_LIMIT`] first lets the whole answer leave in one write with a
/// `content-length`; a larger body streams as before, nothing lost.
pub(crate) async fn coalesce_body(
    resp: hyper::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>,
) -> hyper::Response<ResponseBody> {
    let (mut parts, mut body) = resp.into_parts();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    loop {
        match body.frame().await {
            None => {
                let mut whole = bytes::BytesMut::with_capacity(size);
                chunks.iter().for_each(|c| whole.extend_from_slice(c));
                parts.headers.remove(http::header::TRANSFER_ENCODING);
                let bodiless = parts.status.is_informational()
                    || parts.status == http::StatusCode::NO_CONTENT
                    || parts.status == http::StatusCode::NOT_MODIFIED;
                if !bodiless {
                    parts
                        .headers
                        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(size));
                }
                let full = Full::new(whole.freeze()).map_err(|never| match never {});
                return hyper::Response::from_parts(parts, full.boxed_unsync());
            }
            Some(Ok(frame)) if frame.is_data() && size < COALESCE_LIMIT => {
                if let Ok(data) = frame.into_data() {
                    size += data.len();
                    chunks.push(data);
                }
            }
            // Trailers, an error, or too large: stream what we have and the rest.
            Some(frame) => {
                let head = chunks.into_iter().map(|c| Ok(http_body::Frame::data(c)));
                let first = std::iter::once(frame.map_err(|e| Box::new(e) as BoxError));
                let rest =
                    http_body_util::BodyStream::new(body.map_err(|e| Box::new(e) as BoxError));
                let stream = futures::stream::iter(head.chain(first)).chain(rest);
                return hyper::Response::from_parts(
                    parts,
                    http_body_util::StreamBody::new(stream).boxed_unsync(),
                );
            }
        }
    }
}
