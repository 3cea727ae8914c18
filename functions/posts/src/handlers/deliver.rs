//! `POST /posts/events`: `user.registered` and `user.updated` keep the
//! author profiles (see [`crate::authors`]); other types are acknowledged
//! and ignored.

use kit::cloudevent;
use kit::idempotency::Tally;
use kit::{ApiError, db};
use spin_sdk::http::{Request, Response};

use crate::authors;

/// Handles the delivery of one event or a batch, applied in one
/// statement: 200 `{"status":"processed"|"duplicate"|"ignored"}` for one
/// event, `{"status":"processed","events":n,"recorded":k}` for a batch,
/// `k` counting the profiles that changed (an event older than the stored
/// profile, or repeated, changes none).
///
/// # Errors
///
/// 401 on a bad signature, 400 on bad attributes, 422 on user data
/// without what a profile needs (a batch holding one is refused whole, so
/// the bridge delivers its events one by one), 503/500 on database
/// failure (the bridge retries).
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let events = cloudevent::receive_all(req)?;
    let mut profiles = Vec::with_capacity(events.len());
    for event in &events {
        if let Some(profile) = authors::profile(event)? {
            profiles.push(profile);
        }
    }
    let ignored = events.len() - profiles.len();
    let applied = if profiles.is_empty() {
        0
    } else {
        authors::apply(&db::connect()?, &profiles)?
    };
    Tally {
        events: events.len(),
        ignored,
        applied: usize::try_from(applied).unwrap_or(0),
    }
    .respond()
}
