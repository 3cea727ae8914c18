//! `GET /openapi.json`: the whole application's OpenAPI 3.1 document,
//! merged from the functions' fragments when the gateway was built.

use kit::ApiError;
use spin_sdk::http::{Request, Response};

use crate::files::{self, OPENAPI};

/// Handles the request: 200 with the document (304 when unchanged).
///
/// # Errors
///
/// None: the document is embedded.
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    Ok(OPENAPI.respond(req, files::REVALIDATE))
}
