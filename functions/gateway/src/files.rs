//! The files the gateway serves as they are — the OpenAPI document, the
//! docs page and its scripts, styles and icons — embedded when the
//! component is built (see `build.rs`), each with its content type and
//! ETag, so answering is a copy.

use spin_sdk::http::{Request, Response};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct File {
    /// The name it is served under.
    pub name: &'static str,
    /// Its `content-type`.
    pub content_type: &'static str,
    /// A strong validator of its bytes (quoted).
    pub etag: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/files.rs"));

/// Caches ask again each time (the answer is a 304 when nothing changed):
/// for what names the other files, so a new build shows at once.
pub const REVALIDATE: &str = "no-cache";

/// Caches keep it a day without asking.
pub const ONE_DAY: &str = "public, max-age=86400";

impl File {
    /// 200 with the file, or 304 without a body when `If-None-Match`
    /// names its ETag (or `*`).
    pub fn respond(&self, req: &Request, cache_control: &str) -> Response {
        let fresh = req
            .header("if-none-match")
            .and_then(|v| v.as_str())
            .is_some_and(|tags| names_etag(tags, self.etag));
        let mut builder = Response::builder();
        builder
            .header("etag", self.etag)
            .header("cache-control", cache_control)
            .header("x-content-type-options", "nosniff");
        if fresh {
            builder.status(304).build()
        } else {
            builder
                .status(200)
                .header("content-type", self.content_type)
                .body(self.body.to_vec())
                .build()
        }
    }
}

/// The file `/docs/{name}` serves.
pub fn asset(name: &str) -> Option<&'static File> {
    ASSETS.iter().find(|file| file.name == name)
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, as
/// RFC 9110 asks for this header).
fn names_etag(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_are_read_weakly() {
        let etag = "\"abc-1\"";
        for (list, matches) in [
            ("\"abc-1\"", true),
            ("W/\"abc-1\"", true),
            ("\"x\", \"abc-1\"", true),
            ("*", true),
            ("\"abc-2\"", false),
            ("abc-1", false),
            ("", false),
        ] {
            assert_eq!(names_etag(list, etag), matches, "{list}");
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_ref_resolves() {
        let doc: serde_json::Value = serde_json::from_slice(OPENAPI.body).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        let text = std::str::from_utf8(OPENAPI.body).unwrap();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let reference = reference.split('"').next().unwrap();
            assert!(
                kit::openapi::resolve(&doc, reference).is_some(),
                "{reference} does not resolve"
            );
        }
    }

    #[test]
    fn the_openapi_document_lists_every_docs_asset() {
        let doc: serde_json::Value = serde_json::from_slice(OPENAPI.body).unwrap();
        let listed: std::collections::BTreeSet<&str> =
            doc["paths"]["/docs/{asset}"]["get"]["parameters"][0]["schema"]["enum"]
                .as_array()
                .expect("the asset names are an enum")
                .iter()
                .filter_map(serde_json::Value::as_str)
                .collect();
        let served = ASSETS.iter().map(|f| f.name).collect();
        assert_eq!(listed, served);
    }
}
