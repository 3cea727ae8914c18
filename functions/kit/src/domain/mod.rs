//! Domain newtypes: input is parsed into these once, at the edge, and the
//! rest of the code relies on their invariants instead of re-checking strings.

mod email;
mod money;
mod password;
mod role;
mod timestamp;
mod username;

pub use email::Email;
pub use money::{Amount, Currency, MAX_CENTS};
pub use password::Password;
pub use role::Role;
pub use timestamp::Timestamp;
pub use username::Username;
