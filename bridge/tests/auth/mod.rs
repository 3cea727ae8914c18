//! Auth end to end: the compiled `auth` component through the embedded host,
//! against a fresh Postgres database and the local Redis.

mod bad_input;
mod dependencies;
mod flows;
mod lifecycle;
mod roles;
mod seed_compat;
mod token_attacks;
