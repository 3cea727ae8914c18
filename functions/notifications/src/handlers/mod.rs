//! One module per operation: parse → apply → respond.

pub mod deliver;
pub mod health;
pub mod list_mine;
pub mod notify;
