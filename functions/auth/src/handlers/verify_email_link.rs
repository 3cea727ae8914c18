//! `GET /auth/verify-email?token=…`: the link in the verification e-mail.
//! Same effect as `POST /auth/verify-email`; answers a small HTML page,
//! since a person clicked it.
//!
//! The page never repeats anything from the request, is not cached, and
//! sends no `Referer` onwards (the token is in its URL).

use kit::query::Query;
use kit::{ApiError, problem::Problem};
use spin_sdk::http::{Request, Response};

use crate::handlers::verify_email;

/// Handles the request: 200 with a page saying the address is verified,
/// or a page saying why not with the problem's status (422, 410).
///
/// # Errors
///
/// 503/500 when the database fails (a problem+json, as everywhere).
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    match verify(req) {
        Ok(()) => Ok(page(
            200,
            "E-mail address verified",
            "Thank you: your e-mail address is verified. You can close this page.",
        )),
        Err(err) if matches!(err.status(), 410 | 422) => {
            let Problem {
                title,
                detail,
                errors,
                ..
            } = err.problem();
            let detail = errors.first().map_or(detail, |e| e.message.clone());
            Ok(page(err.status(), title, &detail))
        }
        Err(err) => Err(err),
    }
}

/// Reads the one `token` parameter and verifies with it.
fn verify(req: &Request) -> Result<(), ApiError> {
    let query = Query::of(req);
    query.only(&["token"])?;
    let raw = query.get("token").unwrap_or_default();
    let token = verify_email::parse_token(raw)?;
    Ok(verify_email::verify(&token)?)
}

/// The page: a heading and one sentence, both fixed texts of ours.
fn page(status: u16, heading: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{heading}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;\
         padding:0 1rem;line-height:1.5}}</style>\n</head>\n<body>\n\
         <h1>{heading}</h1>\n<p>{text}</p>\n</body>\n</html>\n",
        heading = kit::html::escape(heading),
        text = kit::html::escape(text),
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        )
        .header("x-content-type-options", "nosniff")
        .body(body)
        .build()
}
