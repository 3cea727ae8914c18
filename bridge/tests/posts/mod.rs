//! The posts service through the embedded host against the real Postgres
//! and Redis: authorization, bad input, paging while posts are added,
//! posts written before their author's profile arrived, and the `bridge
//! replay` command. The event scenario across transports is in
//! `crate::common::posts`, run by the events and kafka suites.

mod authorization;
mod bad_input;
mod paging;
mod profiles;
mod replay_command;
