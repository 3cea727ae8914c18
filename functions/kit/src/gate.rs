//! The front door of every component: start its trace span ([`trace`]),
//! route, count the request against the rate limits its route's [`Guard`]
//! names, run the handler, and stamp the answer with the quota headers.
//!
//! Unknown routes are counted too (a scanner walking paths spends its quota
//! like anyone else); the bridge's signed deliveries are not. When Redis is
//! down, public routes are served unmetered (availability first: the limit
//! protects capacity, not secrets) and credential routes answer 503
//! (password guessing must never go unmetered). Nothing here answers 500
//! for a Redis failure.

use spin_sdk::http::{IntoResponse, Request, Response};

use crate::cache;
use crate::client_addr;
use crate::problem::ApiError;
use crate::rate_limit::{self, Limits, Policy, Quotas};
use crate::router::{self, Guard, Matched, Route};
use crate::trace;

/// The subject of requests whose address cannot be read.
const UNKNOWN_ADDRESS: &str = "unknown";

/// Serves `req` with `handle` behind the gate (for synchronous handlers).
pub fn serve<H>(
    req: &Request,
    routes: &[Route<H>],
    handle: impl FnOnce(Matched<'_, H>) -> Result<Response, ApiError>,
) -> Response {
    match admit(req, routes) {
        Ok(Admitted { matched, quotas }) => respond(&quotas, handle(matched)),
        Err(refused) => refused,
    }
}

/// A request the gate let through: its route, and what it was counted as.
#[derive(Debug)]
pub struct Admitted<'r, H> {
    /// The route it resolved to.
    pub matched: Matched<'r, H>,
    /// Its quotas after counting it (empty when not counted).
    pub quotas: Quotas,
}

/// A handler's result as the answer, with the quota headers.
pub fn respond(quotas: &Quotas, result: Result<Response, ApiError>) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    quotas.stamp(&mut response);
    response
}

/// Routes `req` and counts it; `Err` is the finished answer (404, 405, 429,
/// 503) for a request that goes no further.
///
/// # Errors
///
/// The answer to send instead of running a handler.
pub fn admit<'r, H>(req: &Request, routes: &'r [Route<H>]) -> Result<Admitted<'r, H>, Response> {
    trace::begin(req);
    let method = req.method().to_string();
    let route = router::resolve(routes, &method, router::request_path(req));
    let guard = route.as_ref().map_or(Guard::Public, |m| m.guard);
    let quotas = match count(req, guard) {
        Ok(quotas) => quotas,
        Err(err) => return Err(err.into_response()),
    };
    match quotas.check().and(route) {
        Ok(matched) => Ok(Admitted { matched, quotas }),
        Err(err) => Err(respond(&quotas, Err(err))),
    }
}

/// Counts the request against what `guard` asks for.
fn count(req: &Request, guard: Guard) -> Result<Quotas, ApiError> {
    if guard == Guard::Delivery {
        return Ok(Quotas::default());
    }
    let limits = Limits::from_variables(guard == Guard::Credentials)?;
    let policies: Vec<Policy> = match guard {
        Guard::Credentials => [limits.address, limits.login]
            .into_iter()
            .flatten()
            .collect(),
        _ => limits.address.into_iter().collect(),
    };
    if policies.is_empty() {
        return Ok(Quotas::default());
    }
    let address = client_address(req)?;
    let counted: Vec<(Policy, &str)> = policies.iter().map(|p| (*p, address.as_str())).collect();
    let result = cache::connect().and_then(|redis| Quotas::count(&redis, &counted));
    match result {
        Ok(quotas) => Ok(quotas),
        Err(err @ ApiError::ServiceUnavailable { .. }) if guard == Guard::Public => {
            eprintln!("rate limit not counted (served unmetered): {err:#}");
            Ok(Quotas::default())
        }
        Err(err) => Err(err),
    }
}

/// The client's address as the limits key it. Without `X-Forwarded-For`
/// the peer is the client however many proxies are trusted, so the
/// variable is read only when the header is there.
fn client_address(req: &Request) -> Result<String, ApiError> {
    let peer = req.header("spin-client-addr").and_then(|v| v.as_str());
    let forwarded: Vec<&str> = req
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
        .filter_map(|(_, value)| value.as_str())
        .collect();
    let trusted = if forwarded.is_empty() {
        0
    } else {
        rate_limit::trusted_proxies()?
    };
    Ok(client_addr::resolve(trusted, peer, forwarded)
        .map_or_else(|| UNKNOWN_ADDRESS.to_owned(), |ip| ip.to_string()))
}

/// Counts a login or password attempt against the account's own limit
/// (on top of the per-address one the gate counted), so guessing one
/// account's password from many addresses is limited too.
///
/// # Errors
///
/// 429 when the account's attempts are spent; 503 when Redis is down
/// (closed: see the module doc).
pub fn count_account_attempt(email: &str) -> Result<(), ApiError> {
    let Some(login) = Limits::from_variables(true)?.login else {
        return Ok(());
    };
    let policy = Policy {
        name: "account",
        ..login
    };
    let subject = crate::rate_limit::account_subject(email);
    let redis = cache::connect()?;
    Quotas::count(&redis, &[(policy, subject.as_str())])?.check()
}

/// Counts an action on an account (asking for a password reset, for
/// another verification e-mail) against a quota of its own: `quota` per
/// rate-limit window, counted under `name` so it spends neither the
/// login attempts nor another action's quota. `quota` 0 turns it off.
///
/// # Errors
///
/// 429 when the account's quota for the action is spent; 503 when Redis
/// is down (closed, as for login attempts).
pub fn count_account_action(name: &'static str, quota: u64, account: &str) -> Result<(), ApiError> {
    if quota == 0 {
        return Ok(());
    }
    let window_secs = crate::config::number(
        crate::rate_limit::WINDOW_SECONDS,
        crate::rate_limit::DEFAULT_WINDOW_SECONDS,
    )?
    .max(1);
    let policy = Policy {
        name,
        quota,
        window_secs,
    };
    let subject = crate::rate_limit::account_subject(account);
    let redis = cache::connect()?;
    Quotas::count(&redis, &[(policy, subject.as_str())])?.check()
}
