//! Query-string parameters, read strictly.
//!
//! A list route names the parameters it understands; anything else, or a
//! parameter given twice, is a 422 naming it, so a typo (`?in_stok=true`)
//! is an error instead of a silently unfiltered answer.

use std::str::FromStr;

use spin_sdk::http::Request;

use crate::problem::{ApiError, FieldError};

/// A request's decoded query parameters, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// The request's query string, decoded.
    pub fn of(req: &Request) -> Self {
        Self::parse(req.query())
    }

    /// The request's `application/x-www-form-urlencoded` body (what an
    /// HTML form posts), decoded like a query string.
    ///
    /// # Errors
    ///
    /// 413 when it is larger than [`crate::json::MAX_BODY_BYTES`].
    pub fn form(req: &Request) -> Result<Self, ApiError> {
        crate::json::check_size(crate::json::content_length(req), req.body())?;
        Ok(Self::decode(req.body()))
    }

    /// Whether `req` carries a form body (its `Content-Type` is
    /// `application/x-www-form-urlencoded`, parameters aside).
    pub fn is_form(req: &Request) -> bool {
        req.header("content-type")
            .and_then(|v| v.as_str())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
    }

    /// Decodes `raw` (without the `?`).
    pub fn parse(raw: &str) -> Self {
        Self::decode(raw.as_bytes())
    }

    fn decode(raw: &[u8]) -> Self {
        Self {
            pairs: form_urlencoded::parse(raw)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// Checks that only `allowed` parameters appear, each at most once,
    /// and that no value holds a NUL character (which no Postgres text
    /// can hold).
    ///
    /// # Errors
    ///
    /// 422 listing every unknown, repeated or NUL-holding parameter.
    pub fn only(&self, allowed: &[&str]) -> Result<&Self, ApiError> {
        let mut errors = Vec::new();
        for (i, (name, value)) in self.pairs.iter().enumerate() {
            if value.contains('\0') {
                errors.push(FieldError::new(
                    name.clone(),
                    "must not contain NUL characters",
                ));
            } else if !allowed.contains(&name.as_str()) {
                errors.push(FieldError::new(
                    name.clone(),
                    format!(
                        "unknown query parameter; expected one of {}",
                        allowed.join(", ")
                    ),
                ));
            } else if self.pairs[..i].iter().any(|(n, _)| n == name) {
                errors.push(FieldError::new(name.clone(), "given more than once"));
            }
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(ApiError::Validation(errors))
        }
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name` parsed as `T`.
    ///
    /// # Errors
    ///
    /// 422 naming the parameter when the value does not parse.
    pub fn parsed<T>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|raw| {
                raw.parse::<T>()
                    .map_err(|e| ApiError::invalid(name.to_owned(), e.to_string()))
            })
            .transpose()
    }

    /// The value of `name` as a boolean flag (`true` or `false`).
    ///
    /// # Errors
    ///
    /// 422 for any other value.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(name.to_owned(), "must be true or false")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded() {
        let q = Query::parse("q=red%20shoe&limit=5&x=a+b");
        assert_eq!(q.get("q"), Some("red shoe"));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.parsed::<u32>("limit").unwrap(), Some(5));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_422() {
        let q = Query::parse("limit=1&limit=2&in_stok=true");
        let Err(ApiError::Validation(errors)) = q.only(&["limit", "in_stock"]) else {
            panic!("expected a 422");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "in_stok"]);
        assert!(Query::parse("limit=1").only(&["limit"]).is_ok());
    }

    #[test]
    fn nul_characters_are_422() {
        let Err(ApiError::Validation(errors)) = Query::parse("q=a%00b").only(&["q"]) else {
            panic!("expected a 422");
        };
        assert_eq!(errors[0].field, "q");
    }

    #[test]
    fn bad_values_are_422() {
        let q = Query::parse("limit=ten&in_stock=yes");
        assert_eq!(q.parsed::<u32>("limit").unwrap_err().status(), 422);
        assert_eq!(q.flag("in_stock").unwrap_err().status(), 422);
        assert_eq!(
            Query::parse("in_stock=true").flag("in_stock").unwrap(),
            Some(true)
        );
    }
}
