//! RFC 9457 problem details: the one way a spinmesh function reports failure.
//!
//! Handlers return `Result<Response, ApiError>`; the error decides the status
//! and is rendered exactly once, here, as `application/problem+json` with a
//! stable `type` URI clients can switch on. Internal and dependency failures
//! are logged to stderr and never echoed to the caller.

use serde::Serialize;
use spin_sdk::http::{IntoResponse, Response};

/// Media type of every error body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Prefix of the stable problem `type` URIs.
const PROBLEM_TYPE_BASE: &str = "https://spinmesh.dev/problems/";

/// One invalid input field, reported in a 422's `errors` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Path of the offending field (`email`, `items[2].quantity`).
    pub field: String,
    /// What is wrong with it, in words a client developer can act on.
    pub message: String,
}

impl FieldError {
    /// An error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every failure a handler can report, each mapped to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request could not be read at all (malformed JSON, empty body).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: missing, invalid, expired or revoked credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 403: authenticated, but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 403 with its own problem type: the caller may not do this until
    /// something changes, for a reason clients switch on
    /// (`email-not-verified`).
    #[error("{slug}: {detail}")]
    Denied {
        /// The last segment of the problem `type` URI.
        slug: &'static str,
        /// Its fixed title.
        title: &'static str,
        /// This occurrence.
        detail: String,
    },
    /// 404: no such resource or route.
    #[error("not found: {0}")]
    NotFound(String),
    /// 405: the path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// Methods the path does accept, for the `Allow` header.
        allow: Vec<&'static str>,
    },
    /// 409: the change conflicts with existing state (a duplicate, say).
    #[error("conflict: {0}")]
    Conflict(String),
    /// 409 with its own problem type: the current state refuses the
    /// change for a reason clients switch on (`out-of-stock`,
    /// `order-not-pending`).
    #[error("{slug}: {detail}")]
    Refused {
        /// The last segment of the problem `type` URI.
        slug: &'static str,
        /// Its fixed title.
        title: &'static str,
        /// This occurrence, e.g. naming the product.
        detail: String,
    },
    /// 410 with its own problem type: what the request names existed but
    /// is spent for good (`token-used`, `token-expired`).
    #[error("{slug}: {detail}")]
    Gone {
        /// The last segment of the problem `type` URI.
        slug: &'static str,
        /// Its fixed title.
        title: &'static str,
        /// This occurrence.
        detail: String,
    },
    /// 413: the body exceeds the size limit.
    #[error("payload too large")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 422: well-formed JSON whose content is invalid.
    #[error("validation failed: {0:?}")]
    Validation(Vec<FieldError>),
    /// 429: the caller is over its rate limit.
    #[error("rate limited")]
    TooManyRequests {
        /// Seconds until the caller may retry.
        retry_after: u64,
    },
    /// 502: an upstream the request depends on (a webhook, say) failed.
    #[error("bad gateway: {0}")]
    BadGateway(String),
    /// 503: a dependency (Postgres, Redis) is unreachable.
    #[error("{dependency} unavailable")]
    ServiceUnavailable {
        /// Which dependency failed, named to the caller.
        dependency: &'static str,
        /// The underlying failure, logged only.
        #[source]
        source: anyhow::Error,
    },
    /// 500: a bug or unexpected state; the detail is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The serialized body of a problem response.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// Stable URI identifying the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, fixed summary of the kind.
    pub title: &'static str,
    /// The HTTP status, repeated for clients that only see the body.
    pub status: u16,
    /// Explanation of this occurrence.
    pub detail: String,
    /// Per-field validation errors (422 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl ApiError {
    /// A 422 for a single field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    /// A 503 naming `dependency`, keeping `source` for the log.
    pub fn unavailable(dependency: &'static str, source: impl Into<anyhow::Error>) -> Self {
        Self::ServiceUnavailable {
            dependency,
            source: source.into(),
        }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) | Self::Denied { .. } => 403,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Conflict(_) | Self::Refused { .. } => 409,
            Self::Gone { .. } => 410,
            Self::PayloadTooLarge { .. } => 413,
            Self::Validation(_) => 422,
            Self::TooManyRequests { .. } => 429,
            Self::Internal(_) => 500,
            Self::BadGateway(_) => 502,
            Self::ServiceUnavailable { .. } => 503,
        }
    }

    /// The last segment of the problem `type` URI and its title.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest(_) => ("malformed-request", "Malformed request"),
            Self::Unauthorized(_) => ("unauthorized", "Unauthorized"),
            Self::Forbidden(_) => ("forbidden", "Forbidden"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed"),
            Self::Conflict(_) => ("conflict", "Conflict"),
            Self::Refused { slug, title, .. }
            | Self::Denied { slug, title, .. }
            | Self::Gone { slug, title, .. } => (slug, title),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "Payload too large"),
            Self::Validation(_) => ("validation", "Validation failed"),
            Self::TooManyRequests { .. } => ("rate-limited", "Too many requests"),
            Self::Internal(_) => ("internal", "Internal server error"),
            Self::BadGateway(_) => ("bad-gateway", "Bad gateway"),
            Self::ServiceUnavailable { .. } => ("service-unavailable", "Service unavailable"),
        }
    }

    /// The problem body; safe to send (internal details are not included).
    pub fn problem(&self) -> Problem {
        let (slug, title) = self.kind();
        let detail = match self {
            Self::BadRequest(d)
            | Self::Unauthorized(d)
            | Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::Conflict(d)
            | Self::BadGateway(d)
            | Self::Refused { detail: d, .. }
            | Self::Denied { detail: d, .. }
            | Self::Gone { detail: d, .. } => d.clone(),
            Self::MethodNotAllowed { allow } => {
                format!("this resource only accepts {}", allow.join(", "))
            }
            Self::PayloadTooLarge { limit } => {
                format!("the request body exceeds the limit of {limit} bytes")
            }
            Self::Validation(_) => "the request body contains invalid fields".to_owned(),
            Self::TooManyRequests { retry_after } => {
                format!("rate limit exceeded; retry in {retry_after} s")
            }
            Self::ServiceUnavailable { dependency, .. } => {
                format!("a required dependency ({dependency}) is unavailable; try again later")
            }
            Self::Internal(_) => "an unexpected error occurred".to_owned(),
        };
        let errors = match self {
            Self::Validation(errors) => errors.clone(),
            _ => Vec::new(),
        };
        Problem {
            kind: format!("{PROBLEM_TYPE_BASE}{slug}"),
            title,
            status: self.status(),
            detail,
            errors,
        }
    }

    /// Extra response headers the status calls for.
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![("content-type".to_owned(), PROBLEM_CONTENT_TYPE.to_owned())];
        match self {
            Self::Unauthorized(_) => {
                headers.push(("www-authenticate".to_owned(), "Bearer".to_owned()));
            }
            Self::MethodNotAllowed { allow } => {
                headers.push(("allow".to_owned(), allow.join(", ")));
            }
            Self::TooManyRequests { retry_after } => {
                headers.push(("retry-after".to_owned(), retry_after.to_string()));
            }
            // A dependency that is down or a transient conflict: worth a
            // retry soon, not a hammering.
            Self::ServiceUnavailable { .. } => {
                headers.push(("retry-after".to_owned(), "1".to_owned()));
            }
            _ => {}
        }
        headers
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(err) => eprintln!("internal error: {err:#}"),
            Self::ServiceUnavailable { dependency, source } => {
                eprintln!("{dependency} unavailable: {source:#}");
            }
            _ => {}
        }
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        Response::builder()
            .status(self.status())
            .headers(self.headers())
            .body(body)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problem_lists_fields_and_has_stable_type() {
        let err = ApiError::invalid("email", "must contain one @");
        let body = serde_json::to_value(err.problem()).unwrap();
        assert_eq!(body["type"], "https://spinmesh.dev/problems/validation");
        assert_eq!(body["status"], 422);
        assert_eq!(body["errors"][0]["field"], "email");
    }

    #[test]
    fn internal_problem_never_echoes_the_cause() {
        let err = ApiError::Internal(anyhow::anyhow!("password=hunter2 at db.rs:12"));
        let body = serde_json::to_string(&err.problem()).unwrap();
        assert!(!body.contains("hunter2"), "{body}");
        assert_eq!(err.status(), 500);
    }

    #[test]
    fn denied_and_gone_carry_their_own_problem_types() {
        let denied = ApiError::Denied {
            slug: "email-not-verified",
            title: "E-mail address not verified",
            detail: "verify first".into(),
        };
        let body = serde_json::to_value(denied.problem()).unwrap();
        assert_eq!(body["status"], 403);
        assert_eq!(
            body["type"],
            "https://spinmesh.dev/problems/email-not-verified"
        );
        let gone = ApiError::Gone {
            slug: "token-used",
            title: "Token already used",
            detail: "used".into(),
        };
        let body = serde_json::to_value(gone.problem()).unwrap();
        assert_eq!(body["status"], 410);
        assert_eq!(body["type"], "https://spinmesh.dev/problems/token-used");
        assert_eq!(body["detail"], "used");
    }

    #[test]
    fn unauthorized_asks_for_a_bearer_token() {
        let headers = ApiError::Unauthorized("no token".into()).headers();
        assert!(headers.contains(&("www-authenticate".to_owned(), "Bearer".to_owned())));
    }

    #[test]
    fn method_not_allowed_lists_allowed_methods() {
        let err = ApiError::MethodNotAllowed {
            allow: vec!["GET", "PATCH"],
        };
        assert!(
            err.headers()
                .contains(&("allow".to_owned(), "GET, PATCH".to_owned()))
        );
        assert!(err.problem().errors.is_empty());
    }
}
