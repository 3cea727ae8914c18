//! One module per operation: parse → apply → respond.

pub mod health;
pub mod legacy_login;
pub mod legacy_register;
pub mod legacy_users;
pub mod login;
pub mod logout;
pub mod me;
pub mod refresh;
pub mod register;
pub mod update_me;
