//! Request body extraction: bytes → a typed struct, once, with the right status.
//!
//! The order of checks decides the answer: too big (413) before anything is
//! parsed, then empty (400), not JSON or not an object (400), and only then
//! the content: a NUL character in any string or key, which no Postgres
//! text or jsonb value can hold, and then the shape of the fields, where a
//! wrong type or a missing field is a 422 naming the field path.

use serde::Serialize;
use serde::de::DeserializeOwned;
use spin_sdk::http::{Request, Response};

use crate::problem::ApiError;

/// Largest accepted request body: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Parses the request's JSON object body into `T`.
///
/// # Errors
///
/// 413 when `Content-Length` or the actual body exceeds [`MAX_BODY_BYTES`],
/// 400 when the body is empty, not JSON or not an object, 422 when a string
/// holds a NUL character or a field has the wrong type or is missing.
pub fn parse<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    parse_body(content_length(req), req.body())
}

/// Like [`parse`], but an empty body is `None` (for optional bodies).
///
/// # Errors
///
/// As [`parse`], except that an empty body is not an error.
pub fn parse_optional<T: DeserializeOwned>(req: &Request) -> Result<Option<T>, ApiError> {
    check_size(content_length(req), req.body())?;
    if is_blank(req.body()) {
        return Ok(None);
    }
    parse_body(None, req.body()).map(Some)
}

/// A JSON response with `status`.
///
/// # Errors
///
/// 500 if `body` cannot be serialized (a bug).
pub fn respond<T: Serialize>(status: u16, body: &T) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("serializing a response: {e}")))?;
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(bytes)
        .build())
}

pub(crate) fn content_length(req: &Request) -> Option<&str> {
    req.header("content-length").and_then(|v| v.as_str())
}

/// The plain-Rust core of [`parse`]: `content_length` is the raw header value.
///
/// # Errors
///
/// See [`parse`].
pub fn parse_body<T: DeserializeOwned>(
    content_length: Option<&str>,
    body: &[u8],
) -> Result<T, ApiError> {
    check_size(content_length, body)?;
    if is_blank(body) {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    // JSON can only carry a NUL escaped: without `\u0000` in the text there
    // is none, and the walk (a path string per node) is skipped.
    if body.windows(6).any(|w| w == br"\u0000")
        && let Some(field) = nul_at(&value, String::new())
    {
        return Err(ApiError::invalid(field, "must not contain NUL characters"));
    }
    from_value(value)
}

/// The path of the first string or key in `value` holding a NUL character
/// (`\u0000` is valid JSON, but no Postgres text or jsonb value can hold
/// it, so it is refused here rather than failing a statement later).
fn nul_at(value: &serde_json::Value, path: String) -> Option<String> {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => {
            Some(if path.is_empty() { ".".into() } else { path })
        }
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_at(item, format!("{path}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
            let field = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                Some(field)
            } else {
                nul_at(item, field)
            }
        }),
        _ => None,
    }
}

/// Reads an already parsed JSON value as `T` (for handlers that also need
/// the raw value, e.g. to fingerprint it).
///
/// # Errors
///
/// 422 naming the field when a field has the wrong type or is missing.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = err.inner().to_string();
        ApiError::invalid(field_of(&path, &message), message)
    })
}

pub(crate) fn check_size(content_length: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
    let declared = content_length.and_then(|v| v.trim().parse::<u64>().ok());
    let too_big =
        declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) || body.len() > MAX_BODY_BYTES;
    if too_big {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(())
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// serde reports a missing field at its parent's path, naming it only in the
/// message (``missing field `email` ``); put the name back into the path.
fn field_of(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(name)) => name.to_owned(),
        (_, Some(name)) => format!("{path}.{name}"),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
        remember: Option<bool>,
    }

    fn status_of(content_length: Option<&str>, body: &[u8]) -> u16 {
        parse_body::<Login>(content_length, body)
            .map(|_| 200)
            .unwrap_or_else(|e| e.status())
    }

    #[test]
    fn bad_bodies_get_the_right_status() {
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let cases: &[(Option<&str>, &[u8], u16, &str)] = &[
            (
                None,
                br#"{"email":"a@b.co","password":"x"}"#,
                200,
                "valid body",
            ),
            (
                Some("2000000"),
                b"{}",
                413,
                "declared length over the limit",
            ),
            (None, &big, 413, "actual length over the limit"),
            (None, b"", 400, "empty body"),
            (None, b"  \n", 400, "whitespace-only body"),
            (None, b"{not json", 400, "malformed JSON"),
            (None, b"[1,2]", 400, "array instead of object"),
            (None, b"\"str\"", 400, "string instead of object"),
            (None, br#"{"email":"a@b.co"}"#, 422, "missing field"),
            (None, br#"{"email":5,"password":"x"}"#, 422, "wrong type"),
            (
                Some("abc"),
                br#"{"email":"a","password":"x"}"#,
                200,
                "junk length ignored",
            ),
        ];
        for (length, body, expected, why) in cases {
            assert_eq!(status_of(*length, body), *expected, "{why}");
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        let err = parse_body::<Login>(None, br#"{"email":"a","password":"x","remember":"yes"}"#)
            .unwrap_err();
        let ApiError::Validation(errors) = err else {
            panic!("expected a validation error, got {err:?}");
        };
        assert_eq!(errors[0].field, "remember");
    }

    #[test]
    fn missing_fields_name_the_field() {
        let err = parse_body::<Login>(None, br#"{"email":"a"}"#).unwrap_err();
        let ApiError::Validation(errors) = err else {
            panic!("expected a validation error, got {err:?}");
        };
        assert_eq!(errors[0].field, "password");
    }

    #[test]
    fn nul_characters_are_refused_naming_the_field() {
        let cases = [
            (r#"{"email":"a\u0000b","password":"x"}"#, "email"),
            (
                r#"{"email":"a","password":"x","tags":["ok","\u0000"]}"#,
                "tags[1]",
            ),
            (
                r#"{"email":"a","password":"x","o":{"k\u0000":1}}"#,
                "o.k\u{0}",
            ),
        ];
        for (body, field) in cases {
            let err = parse_body::<Login>(None, body.as_bytes()).unwrap_err();
            let ApiError::Validation(errors) = err else {
                panic!("{body}: expected a 422, got {err:?}");
            };
            assert_eq!(errors[0].field, field, "{body}");
        }
    }

    #[test]
    fn deeply_nested_json_is_malformed_not_a_crash() {
        let body = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(status_of(None, body.as_bytes()), 400);
    }
}
