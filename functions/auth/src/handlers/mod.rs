//! One module per operation: parse → apply → respond.

pub mod change_password;
pub mod health;
pub mod legacy_login;
pub mod legacy_register;
pub mod legacy_users;
pub mod login;
pub mod logout;
pub mod me;
pub mod password_reset;
pub mod password_reset_confirm;
pub mod refresh;
pub mod register;
pub mod resend_verification;
pub mod update_me;
pub mod verify_email;
pub mod verify_email_link;
