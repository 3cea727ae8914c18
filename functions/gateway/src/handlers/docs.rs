//! `GET /docs` and `GET /docs/{asset}`: the interactive documentation,
//! Swagger UI rendering `/openapi.json`. Every file comes from this
//! component (Swagger UI's from the npm package `swagger-ui-dist`,
//! fetched when the gateway is built), none from a CDN, so the page works
//! offline and its content-security policy can allow this origin only.

use kit::ApiError;
use spin_sdk::http::{Request, Response};

use crate::files::{self, PAGE};

/// Scripts, styles and fetches from this origin only (Swagger UI sets
/// inline styles and draws some icons as `data:` images).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Handles `GET /docs`: 200 with the page.
///
/// # Errors
///
/// None: the page is embedded.
pub fn page(req: &Request) -> Result<Response, ApiError> {
    let mut response = PAGE.respond(req, files::REVALIDATE);
    response.set_header("content-security-policy", CONTENT_SECURITY_POLICY);
    Ok(response)
}

/// Handles `GET /docs/{asset}`: 200 with the file.
///
/// # Errors
///
/// 404 for a name the page does not use.
pub fn asset(req: &Request, name: &str) -> Result<Response, ApiError> {
    let file = files::asset(name).ok_or_else(|| ApiError::NotFound(format!("no file {name}")))?;
    Ok(file.respond(req, files::ONE_DAY))
}
