//! One module per operation.

pub mod docs;
pub mod health;
pub mod openapi;
