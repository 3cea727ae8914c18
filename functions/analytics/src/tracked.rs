//! A tracked event, parsed once from whatever the client sent.

use kit::ApiError;
use kit::FieldError;
use kit::domain::Timestamp;
use serde::Deserialize;
use serde_json::Value;

/// Longest accepted user id, in characters.
const MAX_USER_ID_CHARS: usize = 128;
/// Longest accepted action, in characters.
const MAX_ACTION_CHARS: usize = 64;

/// Whose event: a non-empty string, or a number kept as its JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    /// Accepts a non-empty string of at most 128 characters, or a number.
    ///
    /// # Errors
    ///
    /// A message for the client otherwise.
    pub fn parse(raw: &Value) -> Result<Self, &'static str> {
        let text = match raw {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err("user_id must be a string or a number"),
        };
        Self::from_text(text)
    }

    /// Accepts a non-empty string of at most 128 characters.
    ///
    /// # Errors
    ///
    /// A message for the client otherwise.
    pub fn from_text(text: String) -> Result<Self, &'static str> {
        if text.trim().is_empty() {
            return Err("user_id must not be empty");
        }
        if text.chars().count() > MAX_USER_ID_CHARS {
            return Err("user_id must be at most 128 characters");
        }
        Ok(Self(text))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What happened: a non-empty string of at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action(String);

impl Action {
    /// Validates `raw`.
    ///
    /// # Errors
    ///
    /// A message for the client when it is not a non-empty string of at most
    /// 64 characters.
    pub fn parse(raw: &Value) -> Result<Self, &'static str> {
        match raw {
            Value::String(s) => Self::from_text(s.clone()),
            _ => Err("action must be a string"),
        }
    }

    /// Validates `text`.
    ///
    /// # Errors
    ///
    /// As [`Action::parse`].
    pub fn from_text(text: String) -> Result<Self, &'static str> {
        if text.trim().is_empty() {
            return Err("action must not be empty");
        }
        if text.chars().count() > MAX_ACTION_CHARS {
            return Err("action must be at most 64 characters");
        }
        Ok(Self(text))
    }

    /// The action as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The body of `POST /events` as sent.
#[derive(Debug, Deserialize)]
pub struct TrackBody {
    user_id: Value,
    action: Value,
    #[serde(default)]
    timestamp: Option<Value>,
}

/// A valid event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// Whose event.
    pub user_id: UserId,
    /// What happened.
    pub action: Action,
    /// When it happened (now when not given).
    pub occurred_at: Timestamp,
}

fn parse_timestamp(raw: Option<&Value>) -> Result<Timestamp, &'static str> {
    match raw {
        None | Some(Value::Null) => Ok(Timestamp::now()),
        Some(Value::String(s)) => Timestamp::parse_rfc3339(s),
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or("must be Unix seconds")
            .and_then(Timestamp::from_unix_seconds),
        Some(_) => Err("must be an RFC 3339 string or Unix seconds"),
    }
}

impl TryFrom<TrackBody> for Tracked {
    type Error = ApiError;

    /// Validates every field and reports all failures at once (422).
    fn try_from(body: TrackBody) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let user_id = UserId::parse(&body.user_id)
            .map_err(|e| errors.push(FieldError::new("user_id", e)))
            .ok();
        let action = Action::parse(&body.action)
            .map_err(|e| errors.push(FieldError::new("action", e)))
            .ok();
        let occurred_at = parse_timestamp(body.timestamp.as_ref())
            .map_err(|e| errors.push(FieldError::new("timestamp", format!("timestamp {e}"))))
            .ok();
        match (user_id, action, occurred_at) {
            (Some(user_id), Some(action), Some(occurred_at)) => Ok(Self {
                user_id,
                action,
                occurred_at,
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<Tracked, ApiError> {
        let body: TrackBody = serde_json::from_value(body).unwrap();
        body.try_into()
    }

    #[test]
    fn user_ids_may_be_strings_or_numbers() {
        let t = parse(json!({"user_id": 42, "action": "login"})).unwrap();
        assert_eq!(t.user_id.as_str(), "42");
        let t = parse(json!({"user_id": "u-1", "action": "login", "timestamp": 0})).unwrap();
        assert_eq!(t.user_id.as_str(), "u-1");
        assert_eq!(t.occurred_at.to_rfc3339(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn timestamps_may_be_rfc3339() {
        let t = parse(json!({"user_id": "u", "action": "a", "timestamp": "2024-05-01T12:00:00Z"}))
            .unwrap();
        assert_eq!(t.occurred_at.to_rfc3339(), "2024-05-01T12:00:00.000000Z");
    }

    #[test]
    fn invalid_fields_are_422_and_named() {
        let long = "x".repeat(65);
        let cases = [
            (
                json!({"user_id": "", "action": "a"}),
                "user_id",
                "empty user id",
            ),
            (
                json!({"user_id": true, "action": "a"}),
                "user_id",
                "boolean user id",
            ),
            (
                json!({"user_id": "u", "action": ""}),
                "action",
                "empty action",
            ),
            (
                json!({"user_id": "u", "action": 7}),
                "action",
                "numeric action",
            ),
            (
                json!({"user_id": "u", "action": long}),
                "action",
                "long action",
            ),
            (
                json!({"user_id": "u", "action": "a", "timestamp": "soon"}),
                "timestamp",
                "bad time",
            ),
            (
                json!({"user_id": "u", "action": "a", "timestamp": -5}),
                "timestamp",
                "negative",
            ),
            (
                json!({"user_id": "u", "action": "a", "timestamp": []}),
                "timestamp",
                "array",
            ),
        ];
        for (body, field, why) in cases {
            let err = parse(body).unwrap_err();
            let ApiError::Validation(errors) = err else {
                panic!("{why}: expected 422, got {err:?}");
            };
            assert_eq!(errors[0].field, field, "{why}");
        }
    }
}
