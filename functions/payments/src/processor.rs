//! A simulated card processor, deterministic, in the style of payment
//! providers' test tokens:
//!
//! | token          | result                                                    |
//! |----------------|-----------------------------------------------------------|
//! | `tok_visa`, `tok_mastercard` | charged                                     |
//! | `tok_declined` | declined (`card_declined`)                                |
//! | `tok_error`    | the processor fails transiently on the first attempt for an order (the handler answers 503, so the bridge retries); the next attempt charges |
//! | none           | declined (`missing_payment_method`)                       |
//! | anything else  | declined (`invalid_token`)                                |
//!
//! Whatever the token, an amount above [`AMOUNT_LIMIT`] is declined
//! (`amount_over_limit`), and an order whose payment window has closed is
//! declined (`payment_window_expired`) rather than charged after the
//! orders function may already have cancelled it.

use kit::domain::Amount;

/// The largest amount the processor charges: 10,000.00.
pub const AMOUNT_LIMIT: Amount = match Amount::from_cents(1_000_000) {
    Ok(a) => a,
    Err(_) => Amount::ZERO,
};

/// The processor's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Charged.
    Charge,
    /// Not charged, with the reason code.
    Decline(&'static str),
    /// The processor failed this time; try again later.
    Unavailable,
}

/// What the processor is asked.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The buyer's token.
    pub token: Option<&'a str>,
    /// The order's total.
    pub amount: Amount,
    /// Whether the order's payment window has closed.
    pub expired: bool,
    /// How many times this order has been presented, this one included.
    pub attempt: u32,
}

/// Decides a charge (see the module docs).
pub fn decide(req: &Request) -> Decision {
    if req.expired {
        return Decision::Decline("payment_window_expired");
    }
    let Some(token) = req.token else {
        return Decision::Decline("missing_payment_method");
    };
    let verdict = match token {
        "tok_visa" | "tok_mastercard" => Decision::Charge,
        "tok_declined" => Decision::Decline("card_declined"),
        "tok_error" if req.attempt <= 1 => Decision::Unavailable,
        "tok_error" => Decision::Charge,
        _ => Decision::Decline("invalid_token"),
    };
    match verdict {
        Decision::Charge if req.amount > AMOUNT_LIMIT => Decision::Decline("amount_over_limit"),
        other => other,
    }
}

/// Whether the token needs the attempt count (only `tok_error` does).
pub fn counts_attempts(token: Option<&str>) -> bool {
    token == Some("tok_error")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_for(token: Option<&str>, cents: i64, attempt: u32) -> Decision {
        decide(&Request {
            token,
            amount: Amount::from_cents(cents).unwrap(),
            expired: false,
            attempt,
        })
    }

    #[test]
    fn test_tokens_decide_deterministically() {
        assert_eq!(decide_for(Some("tok_visa"), 1999, 1), Decision::Charge);
        assert_eq!(
            decide_for(Some("tok_declined"), 1999, 1),
            Decision::Decline("card_declined")
        );
        assert_eq!(
            decide_for(Some("tok_error"), 1999, 1),
            Decision::Unavailable
        );
        assert_eq!(decide_for(Some("tok_error"), 1999, 2), Decision::Charge);
        assert_eq!(
            decide_for(None, 1999, 1),
            Decision::Decline("missing_payment_method")
        );
        assert_eq!(
            decide_for(Some("tok_bogus"), 1999, 1),
            Decision::Decline("invalid_token")
        );
    }

    #[test]
    fn limits_and_deadlines_decline() {
        assert_eq!(decide_for(Some("tok_visa"), 1_000_000, 1), Decision::Charge);
        assert_eq!(
            decide_for(Some("tok_visa"), 1_000_001, 1),
            Decision::Decline("amount_over_limit")
        );
        let late = Request {
            token: Some("tok_visa"),
            amount: Amount::ZERO,
            expired: true,
            attempt: 1,
        };
        assert_eq!(decide(&late), Decision::Decline("payment_window_expired"));
    }
}
