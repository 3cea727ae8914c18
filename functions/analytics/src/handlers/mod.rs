//! One module per operation: parse → apply → respond.

pub mod actions;
pub mod deliver;
pub mod health;
pub mod track;
pub mod user_actions;
