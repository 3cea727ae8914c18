//! One module per operation: parse → apply → respond.

pub mod deliver;
pub mod get;
pub mod health;
