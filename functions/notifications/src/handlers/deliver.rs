//! `POST /notifications/events`: events the bridge delivers.
//!
//! - `user.registered`, `order.paid`, `order.payment_failed`,
//!   `order.cancelled`: a notice in the log ([`crate::notices`]).
//! - `user.verification_requested`, `user.password_reset_requested`,
//!   `user.password_changed`: an email ([`crate::account`]), queued for
//!   the SMTP sink or delivered to the log ([`crate::outbound`]).
//! - `notification.delivered`, `notification.delivery_failed`: a sink's
//!   report, which settles a queued notification ([`crate::reports`]).
//! - Every auth event with an address keeps the recipients projection
//!   current ([`crate::recipients`]).
//!
//! Notices and emails are stored once per event id (consumer
//! `notifications`): the claim and the insert are one statement. Other
//! types are acknowledged and ignored.

use kit::ApiError;
use kit::cloudevent::{self, CloudEvent};
use kit::db::{self, Connection};
use kit::idempotency::{Claim, Tally};
use spin_sdk::http::{Request, Response};
use uuid::Uuid;

use crate::account::{self, AccountEmail};
use crate::channel::{self, Channel};
use crate::notices::{self, Notice};
use crate::outbound::{self, Outbound, Way};
use crate::recipients;
use crate::reports::{self, Report};
use crate::store::{self, Record, Status};

/// This consumer's name in `processed_events`.
pub const CONSUMER: &str = "notifications";

/// What one event asks of this consumer.
enum Effect {
    Notice(Notice),
    Email(Box<AccountEmail>),
    Report(Report),
}

/// The effect `event` asks for, if any.
///
/// # Errors
///
/// 422 when the event lacks what its effect needs.
fn effect_of(event: &CloudEvent) -> Result<Option<Effect>, ApiError> {
    if let Some(notice) = notices::notice(event)? {
        return Ok(Some(Effect::Notice(notice)));
    }
    if let Some(email) = account::email_for(event)? {
        return Ok(Some(Effect::Email(Box::new(email))));
    }
    Ok(reports::report_of(event)?.map(Effect::Report))
}

/// Handles the delivery: 200 `{"status":"processed"|"duplicate"|"ignored"}`
/// for one event, `{"status":"processed","events":n,"recorded":k}` for a
/// batch.
///
/// # Errors
///
/// 401 on a bad signature, 400 on bad attributes, 422 on an event without
/// what its effect needs (a batch holding one is refused whole, so the
/// bridge delivers its events one by one), 503/500 on database failure
/// (the bridge retries; what was applied stays applied, once).
pub fn handle(req: &Request) -> Result<Response, ApiError> {
    let events = cloudevent::receive_all(req)?;
    let mut notices = Vec::new();
    let mut effects = Vec::new();
    let mut sightings = Vec::new();
    let mut only_sighted = 0;
    let mut ignored = 0;
    for event in &events {
        let sighting = recipients::sighting(event);
        match effect_of(event)? {
            Some(Effect::Notice(notice)) => notices.push((event.id, notice)),
            Some(effect) => effects.push((event.id, effect)),
            None if sighting.is_some() => only_sighted += 1,
            None => ignored += 1,
        }
        sightings.extend(sighting);
    }
    let mut tally = Tally {
        events: events.len(),
        ignored,
        applied: only_sighted,
    };
    if tally.ignored == events.len() {
        return tally.respond();
    }
    let conn = db::connect()?;
    recipients::remember(&conn, &sightings)?;
    let stored = store::insert_all_once(&conn, CONSUMER, &notices)?;
    for notification in &stored {
        channel::log(&notification.user_id, &notification.message);
    }
    tally.applied += stored.len();
    for (event_id, effect) in effects {
        let applied = match effect {
            Effect::Email(email) => send_once(&conn, event_id, *email)?,
            Effect::Report(report) => reports::apply(&conn, &report)?,
            Effect::Notice(_) => false,
        };
        tally.applied += usize::from(applied);
    }
    tally.respond()
}

/// Stores an account email once for `event_id`, queued for the SMTP sink
/// or delivered to the log; `true` if stored now. What is stored is the
/// subject: the email's link and token live only in the sealed request
/// event (or the log line).
///
/// # Errors
///
/// 503/500 on database failure, 500 on a missing sealing key.
fn send_once(conn: &Connection, event_id: Uuid, email: AccountEmail) -> Result<bool, ApiError> {
    let way = outbound::way(Channel::Email)?;
    let record = Record {
        user_id: &email.user_id,
        channel: Channel::Email,
        recipient: Some(&email.message.to),
        kind: email.template.kind(),
        message: &email.message.subject,
    };
    let message = Outbound::Email(email.message.clone());
    let status = match &way {
        Way::Sink { sealing_key } => Status::Queued {
            request_type: message.request_type(),
            sealed: message.sealed(sealing_key)?,
        },
        Way::Log { .. } => Status::Sent,
    };
    let claim = Claim {
        consumer: CONSUMER,
        event_id,
    };
    let stored = store::insert_once(conn, claim, &record, &status)?;
    if let (Some(notification), Way::Log { why }) = (&stored, &way) {
        outbound::log(&notification.id, &notification.user_id, why, &message);
    }
    Ok(stored.is_some())
}
