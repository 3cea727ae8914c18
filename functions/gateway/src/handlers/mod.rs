//! One module per operation.

pub mod health;
