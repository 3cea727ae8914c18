//! The pages behind the link in the verification e-mail.
//!
//! `GET /auth/verify-email?token=…` spends nothing: mail scanners and link
//! previews fetch every link in a message before the person does, and a
//! link that verified on `GET` would be spent by them (and would verify
//! an address nobody read). It shows a page with one button, a form that
//! posts the token to `POST /auth/verify-email`; that form post spends it
//! and is answered with a page too ([`confirm`]). A link that cannot work
//! any more is answered at once with a page saying why.
//!
//! The pages repeat nothing from the request but a well-formed token that
//! is still good (in the form), are not cached, and send no `Referer`
//! onwards (the token is in the URL).

use kit::query::Query;
use kit::{ApiError, db, problem::Problem};
use spin_sdk::http::{Request, Response};

use crate::account_tokens::{self, PresentedToken, Purpose};
use crate::handlers::verify_email;

/// `GET`: 200 with a page whose button verifies the address, or a page
/// saying why the link cannot work with the status the post would get
/// (422 malformed or unknown, 410 used, expired or replaced).
///
/// # Errors
///
/// 503/500 when the database fails (a problem+json, as everywhere).
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let token = match link_token(req) {
        Ok(token) => token,
        Err(err) => return refused(err),
    };
    let conn = db::connect()?;
    match account_tokens::refusal(&conn, Purpose::VerifyEmail, &token)? {
        Some(refusal) => refused(refusal.into()),
        None => Ok(page(
            200,
            "Confirm your e-mail address",
            "Press the button to confirm that this is your e-mail address.",
            Some(&token),
        )),
    }
}

/// The form post from the `GET` page (`POST /auth/verify-email` with an
/// `application/x-www-form-urlencoded` body): spends the token and answers
/// a page saying the address is verified, or why not.
///
/// # Errors
///
/// 413 for an oversized body; 503/500 when the database fails.
pub fn confirm(req: &Request) -> Result<Response, ApiError> {
    let form = Query::form(req)?;
    let verified = form_token(&form).and_then(|token| Ok(verify_email::verify(&token)?));
    match verified {
        Ok(()) => Ok(page(
            200,
            "E-mail address verified",
            "Thank you: your e-mail address is verified. You can close this page.",
            None,
        )),
        Err(err) => refused(err),
    }
}

/// The one `token` query parameter, well-formed.
fn link_token(req: &Request) -> Result<PresentedToken, ApiError> {
    form_token(&Query::of(req))
}

/// The one `token` parameter of `params`, well-formed.
fn form_token(params: &Query) -> Result<PresentedToken, ApiError> {
    params.only(&["token"])?;
    verify_email::parse_token(params.get("token").unwrap_or_default())
}

/// A page saying why the token does not work, for a refusal (410, 422);
/// any other error stays a problem+json.
fn refused(err: ApiError) -> Result<Response, ApiError> {
    if !matches!(err.status(), 410 | 422) {
        return Err(err);
    }
    let status = err.status();
    let Problem {
        title,
        detail,
        errors,
        ..
    } = err.problem();
    let detail = errors.first().map_or(detail, |e| e.message.clone());
    Ok(page(status, title, &detail, None))
}

/// The page: a heading and one sentence, both fixed texts of ours, and
/// with `confirm` the button that posts that token.
fn page(status: u16, heading: &str, text: &str, confirm: Option<&PresentedToken>) -> Response {
    // The form posts to this very path (relative, so it works behind a
    // proxy's path prefix too); the token is base64url, nothing to escape,
    // but it goes through the escape like everything else.
    let form = confirm.map_or_else(String::new, |token| {
        format!(
            "<form method=\"post\" action=\"verify-email\">\n\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\n\
             <button type=\"submit\">Confirm my e-mail address</button>\n</form>\n",
            kit::html::escape(token.as_str())
        )
    });
    let body = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{heading}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;\
         padding:0 1rem;line-height:1.5}}button{{font:inherit;padding:.5rem 1rem}}</style>\n\
         </head>\n<body>\n<h1>{heading}</h1>\n<p>{text}</p>\n{form}</body>\n</html>\n",
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
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        )
        .header("x-content-type-options", "nosniff")
        .body(body)
        .build()
}
