//! What an admin may send to create or change a product, parsed once.
//!
//! Bodies are strict: unknown fields are a 422 (a misspelt `prize` must
//! not silently leave the price unchanged), as are prices with more than
//! two places, negative prices and stock, and numbers out of range.

use kit::domain::{Amount, Currency};
use kit::{ApiError, FieldError};
use serde::Deserialize;

/// Longest product name, in characters (the table's CHECK agrees).
pub const MAX_NAME_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 5000;
/// Most units a product may have in stock (what `integer` holds).
pub const MAX_STOCK: i64 = i32::MAX as i64;

/// `POST /products`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProductBody {
    name: String,
    #[serde(default)]
    description: String,
    price: Amount,
    #[serde(default)]
    currency: Currency,
    stock: i64,
}

/// `PATCH /products/{id}`, as sent: every field optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    name: Option<String>,
    description: Option<String>,
    price: Option<Amount>,
    currency: Option<Currency>,
    stock: Option<i64>,
}

/// A valid new product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// 1–200 characters, trimmed.
    pub name: String,
    /// At most 5000 characters.
    pub description: String,
    /// The price.
    pub price: Amount,
    /// Its currency.
    pub currency: Currency,
    /// Units in stock.
    pub stock: i32,
}

/// A valid change: the fields to set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New price.
    pub price: Option<Amount>,
    /// New currency.
    pub currency: Option<Currency>,
    /// New stock level (a restock or a count correction).
    pub stock: Option<i32>,
}

fn name(raw: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        errors.push(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
        return None;
    }
    if trimmed.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "name",
            "must not contain control characters",
        ));
        return None;
    }
    Some(trimmed.to_owned())
}

fn description(raw: String, errors: &mut Vec<FieldError>) -> Option<String> {
    if raw.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.push(FieldError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
        return None;
    }
    Some(raw)
}

fn stock(raw: i64, errors: &mut Vec<FieldError>) -> Option<i32> {
    match i32::try_from(raw) {
        Ok(n) if n >= 0 => Some(n),
        _ => {
            errors.push(FieldError::new(
                "stock",
                format!("must be a whole number from 0 to {MAX_STOCK}"),
            ));
            None
        }
    }
}

impl TryFrom<NewProductBody> for NewProduct {
    type Error = ApiError;

    fn try_from(body: NewProductBody) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let name = name(&body.name, &mut errors);
        let description = description(body.description, &mut errors);
        let stock = stock(body.stock, &mut errors);
        match (name, description, stock) {
            (Some(name), Some(description), Some(stock)) if errors.is_empty() => Ok(Self {
                name,
                description,
                price: body.price,
                currency: body.currency,
                stock,
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

impl TryFrom<PatchBody> for Patch {
    type Error = ApiError;

    fn try_from(body: PatchBody) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let patch = Patch {
            name: body.name.and_then(|n| name(&n, &mut errors)),
            description: body.description.and_then(|d| description(d, &mut errors)),
            price: body.price,
            currency: body.currency,
            stock: body.stock.and_then(|s| stock(s, &mut errors)),
        };
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        if patch == Patch::default() {
            return Err(ApiError::invalid(
                "body",
                "give at least one of name, description, price, currency, stock",
            ));
        }
        Ok(patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_product(json: &str) -> Result<NewProduct, u16> {
        kit::json::parse_body::<NewProductBody>(None, json.as_bytes())
            .and_then(NewProduct::try_from)
            .map_err(|e| e.status())
    }

    #[test]
    fn a_product_body_parses_once() {
        let p = new_product(r#"{"name":" Mug ","price":"9.50","stock":3}"#).unwrap();
        assert_eq!(p.name, "Mug");
        assert_eq!(p.price.cents(), 950);
        assert_eq!(p.currency.as_str(), "USD");
        assert_eq!(p.stock, 3);
    }

    #[test]
    fn bad_product_bodies_are_refused() {
        let cases = [
            (r#"{"name":"","price":"1","stock":1}"#, 422),
            (r#"{"name":"a","price":"1.999","stock":1}"#, 422),
            (r#"{"name":"a","price":1.999,"stock":1}"#, 422),
            (r#"{"name":"a","price":"-1","stock":1}"#, 422),
            (r#"{"name":"a","price":"1","stock":-1}"#, 422),
            (r#"{"name":"a","price":"1","stock":1e20}"#, 422),
            (r#"{"name":"a","price":"1","stock":99999999999}"#, 422),
            (r#"{"name":"a","price":"1","stock":1,"colour":"red"}"#, 422),
            (
                r#"{"name":"a","price":"1","stock":1,"currency":"usd"}"#,
                422,
            ),
            (r#"{"name":"a","stock":1}"#, 422),
            (r#"{"name":"a","price":"1","stock":"3"}"#, 422),
            (r#"{"name":7,"price":"1","stock":1}"#, 422),
            (r#"["name"]"#, 400),
            (r#"{"name":"a""#, 400),
        ];
        for (json, status) in cases {
            assert_eq!(new_product(json).err(), Some(status), "{json}");
        }
    }

    #[test]
    fn an_empty_patch_is_refused() {
        let patch = |json: &str| {
            kit::json::parse_body::<PatchBody>(None, json.as_bytes()).and_then(Patch::try_from)
        };
        assert_eq!(patch("{}").unwrap_err().status(), 422);
        assert_eq!(
            patch(r#"{"price":"2.00"}"#).unwrap().price.unwrap().cents(),
            200
        );
    }
}
