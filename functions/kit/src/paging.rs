//! Keyset paging: `limit` and an opaque `cursor` in, `next_cursor` out.
//!
//! A page is "the next `limit` rows after this position" in a total order
//! on `(created_at, id)`, never an offset, so rows added or removed while
//! a client pages do not shift what it sees: every row present from start
//! to end appears exactly once. The cursor is the last row's position,
//! base64url-encoded so clients treat it as opaque; it is checked when
//! read, and a cursor that does not decode is a 422, not a 500.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::db::{ParameterValue, text};
use crate::domain::Timestamp;
use crate::problem::ApiError;
use crate::query::Query;

/// Rows per page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page.
pub const MAX_LIMIT: u32 = 100;

/// A position in `(created_at, id)` order: the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The row's `created_at`, RFC 3339 UTC with microseconds (what
    /// [`crate::rfc3339`] renders), so `$n::timestamptz` reads it back
    /// exactly.
    pub created_at: String,
    /// The row's id, breaking ties.
    pub id: Uuid,
}

impl Cursor {
    /// The opaque form sent to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1|{}|{}", self.created_at, self.id))
    }

    /// Reads a cursor a client sent back.
    ///
    /// # Errors
    ///
    /// 422 (`cursor`) when it is not one of ours.
    pub fn decode(raw: &str) -> Result<Self, ApiError> {
        let invalid = || ApiError::invalid("cursor", "is not a cursor this API issued");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = text.split('|');
        let (Some("v1"), Some(at), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        Timestamp::parse_rfc3339(at).map_err(|_| invalid())?;
        Ok(Self {
            created_at: at.to_owned(),
            id: id.parse().map_err(|_| invalid())?,
        })
    }
}

/// What page a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to return, 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// Start after this position; `None` for the first page.
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// Reads `limit` and `cursor` from the query.
    ///
    /// # Errors
    ///
    /// 422 when `limit` is not a number from 1 to [`MAX_LIMIT`] or the
    /// cursor does not decode.
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        let limit = match query.get("limit") {
            None => DEFAULT_LIMIT,
            Some(raw) => raw
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let after = query.get("cursor").map(Cursor::decode).transpose()?;
        Ok(Self { limit, after })
    }

    /// The position parameters of a keyset condition such as
    /// `($n::text IS NULL OR (created_at, id) > ($n::text::timestamptz,
    /// $m::text::uuid))`: the cursor's `created_at` and `id` as text, or
    /// two `NULL`s on the first page.
    pub fn after_params(&self) -> [ParameterValue; 2] {
        match &self.after {
            Some(c) => [text(&c.created_at), text(c.id)],
            None => [ParameterValue::DbNull, ParameterValue::DbNull],
        }
    }

    /// How many rows to fetch: one more than the page, to learn whether
    /// another page follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Splits fetched rows into the page and the cursor of the next page
    /// (`None` on the last page). `position` gives a row's cursor.
    pub fn split<T>(
        &self,
        mut rows: Vec<T>,
        position: impl Fn(&T) -> Cursor,
    ) -> (Vec<T>, Option<String>) {
        let limit = self.limit as usize;
        if rows.len() > limit {
            rows.truncate(limit);
            let next = rows.last().map(|row| position(row).encode());
            (rows, next)
        } else {
            (rows, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            created_at: "2024-05-01T12:00:00.123456Z".into(),
            id: Uuid::from_u128(7),
        }
    }

    #[test]
    fn cursors_round_trip_and_forgeries_are_422() {
        assert_eq!(Cursor::decode(&cursor().encode()).unwrap(), cursor());
        let forged = [
            "",
            "!!!",
            &URL_SAFE_NO_PAD.encode("v2|2024-05-01T12:00:00Z|00000000-0000-0000-0000-000000000007"),
            &URL_SAFE_NO_PAD.encode("v1|yesterday|00000000-0000-0000-0000-000000000007"),
            &URL_SAFE_NO_PAD.encode("v1|2024-05-01T12:00:00Z|nope"),
            &URL_SAFE_NO_PAD
                .encode("v1|2024-05-01T12:00:00Z|00000000-0000-0000-0000-000000000007|x"),
        ];
        for raw in forged {
            assert_eq!(Cursor::decode(raw).unwrap_err().status(), 422, "{raw}");
        }
    }

    #[test]
    fn limits_default_and_are_bounded() {
        let page = |q: &str| PageRequest::from_query(&Query::parse(q));
        assert_eq!(page("").unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(page("limit=100").unwrap().limit, 100);
        for bad in ["limit=0", "limit=101", "limit=-1", "limit=x", "limit="] {
            assert_eq!(page(bad).unwrap_err().status(), 422, "{bad}");
        }
    }

    #[test]
    fn a_full_fetch_has_a_next_cursor() {
        let page = PageRequest {
            limit: 2,
            after: None,
        };
        let at = |i: &u128| Cursor {
            created_at: "2024-05-01T12:00:00Z".into(),
            id: Uuid::from_u128(*i),
        };
        let (rows, next) = page.split(vec![1, 2, 3], at);
        assert_eq!(rows, [1, 2]);
        assert_eq!(
            Cursor::decode(&next.unwrap()).unwrap().id,
            Uuid::from_u128(2)
        );
        let (rows, next) = page.split(vec![1, 2], at);
        assert_eq!((rows.len(), next), (2, None));
    }
}
