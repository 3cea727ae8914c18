//! `POST /orders` bodies, parsed once.
//!
//! Two shapes are accepted: the current one,
//! `{"items": [{"product_id", "quantity"}], "payment": {"token"}}`, and the
//! single-item form older clients send, `{"product_id" | "productId",
//! "quantity", "payment"?}`. Unknown fields are refused, like mixing the
//! two shapes.

use kit::{ApiError, FieldError};
use serde::Deserialize;
use uuid::Uuid;

/// Most lines in one order.
pub const MAX_LINES: usize = 100;
/// Most units of one product in one line.
pub const MAX_QUANTITY: i64 = 1000;
/// Longest payment token.
pub const MAX_TOKEN_CHARS: usize = 64;

/// The body as sent: every field of both shapes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceBody {
    items: Option<Vec<LineBody>>,
    product_id: Option<Uuid>,
    #[serde(rename = "productId")]
    product_id_camel: Option<Uuid>,
    quantity: Option<i64>,
    payment: Option<PaymentBody>,
}

/// One line as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    product_id: Uuid,
    quantity: i64,
}

/// The payment method as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    token: Option<String>,
}

/// One valid line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The product.
    pub product_id: Uuid,
    /// Units, 1 to [`MAX_QUANTITY`].
    pub quantity: i64,
}

/// A valid order request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrder {
    /// At least one line, at most [`MAX_LINES`].
    pub lines: Vec<Line>,
    /// The payment token, if any (none declines at payment).
    pub token: Option<String>,
}

impl PlaceOrder {
    /// The lines as the JSON array `reserve_stock` takes.
    pub fn items_json(&self) -> String {
        let items: Vec<serde_json::Value> = self
            .lines
            .iter()
            .map(|l| serde_json::json!({"product_id": l.product_id, "quantity": l.quantity}))
            .collect();
        serde_json::Value::Array(items).to_string()
    }
}

fn quantity(field: String, raw: i64, errors: &mut Vec<FieldError>) -> Option<i64> {
    if (1..=MAX_QUANTITY).contains(&raw) {
        Some(raw)
    } else {
        errors.push(FieldError::new(
            field,
            format!("must be a whole number from 1 to {MAX_QUANTITY}"),
        ));
        None
    }
}

fn token(raw: Option<PaymentBody>, errors: &mut Vec<FieldError>) -> Option<String> {
    let token = raw?.token?;
    let ok = !token.is_empty()
        && token.chars().count() <= MAX_TOKEN_CHARS
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Some(token)
    } else {
        errors.push(FieldError::new(
            "payment.token",
            format!("must be 1 to {MAX_TOKEN_CHARS} letters, digits, '_' or '-'"),
        ));
        None
    }
}

impl TryFrom<PlaceBody> for PlaceOrder {
    type Error = ApiError;

    fn try_from(body: PlaceBody) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let single = body.product_id.or(body.product_id_camel);
        let lines = match (body.items, single) {
            (Some(_), Some(_)) => {
                errors.push(FieldError::new(
                    "items",
                    "give either items or product_id and quantity, not both",
                ));
                Vec::new()
            }
            (Some(items), None) => {
                if body.quantity.is_some() {
                    errors.push(FieldError::new("quantity", "belongs inside each item"));
                }
                if items.is_empty() || items.len() > MAX_LINES {
                    errors.push(FieldError::new(
                        "items",
                        format!("must hold 1 to {MAX_LINES} lines"),
                    ));
                    Vec::new()
                } else {
                    items
                        .into_iter()
                        .enumerate()
                        .filter_map(|(i, line)| {
                            quantity(format!("items[{i}].quantity"), line.quantity, &mut errors)
                                .map(|quantity| Line {
                                    product_id: line.product_id,
                                    quantity,
                                })
                        })
                        .collect()
                }
            }
            (None, Some(product_id)) => match body.quantity {
                Some(raw) => quantity("quantity".into(), raw, &mut errors)
                    .map(|quantity| {
                        vec![Line {
                            product_id,
                            quantity,
                        }]
                    })
                    .unwrap_or_default(),
                None => {
                    errors.push(FieldError::new("quantity", "is required"));
                    Vec::new()
                }
            },
            (None, None) => {
                errors.push(FieldError::new(
                    "items",
                    "is required (or product_id and quantity)",
                ));
                Vec::new()
            }
        };
        if body.product_id.is_some() && body.product_id_camel.is_some() {
            errors.push(FieldError::new(
                "productId",
                "give product_id or productId, not both",
            ));
        }
        let token = token(body.payment, &mut errors);
        if errors.is_empty() {
            Ok(Self { lines, token })
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(json: &str) -> Result<PlaceOrder, u16> {
        kit::json::parse_body::<PlaceBody>(None, json.as_bytes())
            .and_then(PlaceOrder::try_from)
            .map_err(|e| e.status())
    }

    const P: &str = "7d2c5f7e-0000-4000-8000-000000000001";

    #[test]
    fn both_shapes_parse() {
        let full = place(&format!(
            r#"{{"items":[{{"product_id":"{P}","quantity":2}}],"payment":{{"token":"tok_visa"}}}}"#
        ))
        .unwrap();
        assert_eq!(full.lines[0].quantity, 2);
        assert_eq!(full.token.as_deref(), Some("tok_visa"));
        let old = place(&format!(r#"{{"productId":"{P}","quantity":1}}"#)).unwrap();
        assert_eq!(old.lines.len(), 1);
        assert_eq!(old.token, None);
        let snake = place(&format!(r#"{{"product_id":"{P}","quantity":3}}"#)).unwrap();
        assert_eq!(snake.lines[0].quantity, 3);
    }

    #[test]
    fn bad_orders_are_refused() {
        let many = format!(
            r#"{{"items":[{}]}}"#,
            vec![format!(r#"{{"product_id":"{P}","quantity":1}}"#); 10_000].join(",")
        );
        let cases = [
            format!(r#"{{"items":[{{"product_id":"{P}","quantity":0}}]}}"#),
            format!(r#"{{"items":[{{"product_id":"{P}","quantity":-1}}]}}"#),
            format!(r#"{{"items":[{{"product_id":"{P}","quantity":1.5}}]}}"#),
            format!(r#"{{"items":[{{"product_id":"{P}","quantity":99999999999999999999}}]}}"#),
            format!(r#"{{"items":[{{"product_id":"{P}","quantity":"2"}}]}}"#),
            r#"{"items":[{"product_id":"nope","quantity":1}]}"#.to_owned(),
            format!(r#"{{"items":[{{"product_id":"{P}","quantity":1,"x":1}}]}}"#),
            r#"{"items":[]}"#.to_owned(),
            r#"{}"#.to_owned(),
            format!(r#"{{"product_id":"{P}"}}"#),
            format!(r#"{{"items":[{{"product_id":"{P}","quantity":1}}],"product_id":"{P}"}}"#),
            format!(r#"{{"product_id":"{P}","quantity":1,"payment":{{"token":"x y"}}}}"#),
            format!(r#"{{"product_id":"{P}","quantity":1,"coupon":"FREE"}}"#),
            many,
        ];
        for json in &cases {
            assert_eq!(
                place(json).err(),
                Some(422),
                "{}",
                &json[..json.len().min(120)]
            );
        }
    }
}
