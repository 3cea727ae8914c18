//! What a client may send to write a post, parsed once.
//!
//! Bodies are strict: unknown fields are a 422 (a misspelt `titel` must
//! not silently leave the title unchanged). Titles are trimmed; bodies are
//! kept as sent. Tags are trimmed and lowercased (so `Rust` and `rust` are
//! one tag, and the `tag` filter matches either), repeated tags collapse
//! into one, and the order the client gave is kept.

use kit::{ApiError, FieldError};
use serde::Deserialize;

/// Longest title, in characters (the table's CHECK agrees).
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest body, in characters (the table's CHECK agrees).
pub const MAX_BODY_CHARS: usize = 20_000;
/// Most tags on one post (the table's CHECK agrees).
pub const MAX_TAGS: usize = 10;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 32;

/// `POST /posts`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPostBody {
    title: String,
    body: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// `PATCH /posts/{id}`, as sent: every field optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    title: Option<String>,
    body: Option<String>,
    tags: Option<Vec<String>>,
}

/// A valid new post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    /// 1–200 characters, trimmed.
    pub title: String,
    /// 1–20,000 characters.
    pub body: String,
    /// At most 10 normalized tags.
    pub tags: Tags,
}

/// A valid change: the fields to set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch {
    /// New title.
    pub title: Option<String>,
    /// New body.
    pub body: Option<String>,
    /// New tags (an empty list removes them all).
    pub tags: Option<Tags>,
}

/// A post's tags: at most [`MAX_TAGS`], each 1–[`MAX_TAG_CHARS`]
/// characters, trimmed, lowercased, without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<String>);

impl Tags {
    /// The tags as a JSON array, the form statements read them in
    /// (`$n::text::jsonb`), so no host needs to support array parameters.
    pub fn to_json(&self) -> String {
        serde_json::Value::from(self.0.clone()).to_string()
    }
}

/// One tag, normalized.
///
/// # Errors
///
/// A message for the client when `raw` cannot be a tag.
pub fn tag(raw: &str) -> Result<String, String> {
    let tag = raw.trim().to_lowercase();
    let chars = tag.chars().count();
    if chars == 0 || chars > MAX_TAG_CHARS {
        return Err(format!("a tag must be 1 to {MAX_TAG_CHARS} characters"));
    }
    if tag.chars().any(|c| c.is_control() || c == ',') {
        return Err("a tag must not contain control characters or commas".to_owned());
    }
    Ok(tag)
}

fn tags(raw: Vec<String>, errors: &mut Vec<FieldError>) -> Option<Tags> {
    if raw.len() > MAX_TAGS {
        errors.push(FieldError::new("tags", format!("at most {MAX_TAGS} tags")));
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, one) in raw.iter().enumerate() {
        match tag(one) {
            Ok(t) if !out.contains(&t) => out.push(t),
            Ok(_) => {}
            Err(message) => {
                errors.push(FieldError::new(format!("tags[{i}]"), message));
                return None;
            }
        }
    }
    Some(Tags(out))
}

fn title(raw: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_TITLE_CHARS {
        errors.push(FieldError::new(
            "title",
            format!("must be 1 to {MAX_TITLE_CHARS} characters"),
        ));
        return None;
    }
    if trimmed.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "title",
            "must not contain control characters",
        ));
        return None;
    }
    Some(trimmed.to_owned())
}

fn body(raw: String, errors: &mut Vec<FieldError>) -> Option<String> {
    let chars = raw.chars().count();
    if raw.trim().is_empty() || chars > MAX_BODY_CHARS {
        errors.push(FieldError::new(
            "body",
            format!("must be 1 to {MAX_BODY_CHARS} characters, not only spaces"),
        ));
        return None;
    }
    if raw.contains('\0') {
        errors.push(FieldError::new("body", "must not contain NUL characters"));
        return None;
    }
    Some(raw)
}

impl TryFrom<NewPostBody> for NewPost {
    type Error = ApiError;

    fn try_from(raw: NewPostBody) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let title = title(&raw.title, &mut errors);
        let body = body(raw.body, &mut errors);
        let tags = tags(raw.tags, &mut errors);
        match (title, body, tags) {
            (Some(title), Some(body), Some(tags)) if errors.is_empty() => {
                Ok(Self { title, body, tags })
            }
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

impl TryFrom<PatchBody> for Patch {
    type Error = ApiError;

    fn try_from(raw: PatchBody) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let patch = Patch {
            title: raw.title.and_then(|t| title(&t, &mut errors)),
            body: raw.body.and_then(|b| body(b, &mut errors)),
            tags: raw.tags.and_then(|t| tags(t, &mut errors)),
        };
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        if patch == Patch::default() {
            return Err(ApiError::invalid(
                "body",
                "give at least one of title, body, tags",
            ));
        }
        Ok(patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_post(json: &str) -> Result<NewPost, u16> {
        kit::json::parse_body::<NewPostBody>(None, json.as_bytes())
            .and_then(NewPost::try_from)
            .map_err(|e| e.status())
    }

    fn patch(json: &str) -> Result<Patch, u16> {
        kit::json::parse_body::<PatchBody>(None, json.as_bytes())
            .and_then(Patch::try_from)
            .map_err(|e| e.status())
    }

    #[test]
    fn a_post_body_parses_once() {
        let p = new_post(r#"{"title":" Hello ","body":"First!","tags":["Rust"," wasm ","rust"]}"#)
            .unwrap();
        assert_eq!(p.title, "Hello");
        assert_eq!(p.body, "First!");
        assert_eq!(p.tags.to_json(), r#"["rust","wasm"]"#);
        assert_eq!(
            new_post(r#"{"title":"t","body":"b"}"#).unwrap().tags,
            Tags::default()
        );
    }

    #[test]
    fn bad_post_bodies_are_refused() {
        let long_title = "t".repeat(MAX_TITLE_CHARS + 1);
        let long_body = "b".repeat(MAX_BODY_CHARS + 1);
        let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        let cases = [
            (r#"{"title":"","body":"b"}"#.to_owned(), 422, "empty title"),
            (
                r#"{"title":"   ","body":"b"}"#.to_owned(),
                422,
                "blank title",
            ),
            (
                format!(r#"{{"title":"{long_title}","body":"b"}}"#),
                422,
                "long title",
            ),
            (r#"{"title":"t","body":""}"#.to_owned(), 422, "empty body"),
            (
                format!(r#"{{"title":"t","body":"{long_body}"}}"#),
                422,
                "long body",
            ),
            (
                format!(
                    r#"{{"title":"t","body":"b","tags":{}}}"#,
                    serde_json::json!(eleven)
                ),
                422,
                "eleven tags",
            ),
            (
                r#"{"title":"t","body":"b","tags":[""]}"#.to_owned(),
                422,
                "empty tag",
            ),
            (
                format!(
                    r#"{{"title":"t","body":"b","tags":["{}"]}}"#,
                    "x".repeat(33)
                ),
                422,
                "long tag",
            ),
            (
                r#"{"title":"t","body":"b","tags":"rust"}"#.to_owned(),
                422,
                "tags not a list",
            ),
            (
                r#"{"title":"t","body":"b","tags":[1]}"#.to_owned(),
                422,
                "tag not text",
            ),
            (
                r#"{"title":7,"body":"b"}"#.to_owned(),
                422,
                "title not text",
            ),
            (r#"{"body":"b"}"#.to_owned(), 422, "no title"),
            (
                r#"{"title":"t","body":"b","author":"x"}"#.to_owned(),
                422,
                "unknown field",
            ),
            (r#"{"title":"t""#.to_owned(), 400, "malformed"),
            (r#"["title"]"#.to_owned(), 400, "not an object"),
        ];
        for (json, status, why) in cases {
            assert_eq!(new_post(&json).map(|_| ()), Err(status), "{why}");
        }
    }

    #[test]
    fn a_patch_needs_one_valid_field() {
        assert_eq!(patch(r#"{"tags":[]}"#).unwrap().tags, Some(Tags::default()));
        assert_eq!(
            patch(r#"{"title":"New"}"#).unwrap().title.as_deref(),
            Some("New")
        );
        for bad in [
            r#"{}"#,
            r#"{"title":""}"#,
            r#"{"titel":"x"}"#,
            r#"{"body":null}"#,
        ] {
            assert_eq!(patch(bad).map(|_| ()), Err(422), "{bad}");
        }
    }
}
