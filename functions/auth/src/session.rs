//! What a successful login or refresh returns: an access token and a refresh
//! token.

use kit::ApiError;
use kit::config;
use kit::db::Connection;
use kit::domain::Role;
use serde::Serialize;
use uuid::Uuid;

use crate::refresh_tokens::{self, RefreshToken};

/// The token pair in the response body.
#[derive(Debug, Serialize)]
pub struct TokenPair {
    /// The EdDSA JWT.
    pub access_token: String,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
}

/// Issues a pair for a fresh login, starting a new refresh-token family;
/// the access token carries the account's token `generation`.
///
/// # Errors
///
/// 500 on broken JWT variables, 503/500 on database failure.
pub fn login(
    conn: &Connection,
    user_id: Uuid,
    role: Role,
    generation: u64,
) -> Result<TokenPair, ApiError> {
    let refresh = RefreshToken::generate()?;
    refresh_tokens::start_family(conn, user_id, &refresh)?;
    pair(user_id, role, generation, refresh)
}

/// Signs an access token of token `generation` and bundles it with
/// `refresh`.
///
/// # Errors
///
/// 500 on broken JWT variables.
pub fn pair(
    user_id: Uuid,
    role: Role,
    generation: u64,
    refresh: RefreshToken,
) -> Result<TokenPair, ApiError> {
    let access = config::token_signer()?.issue(user_id, role, generation)?;
    Ok(TokenPair {
        access_token: access.token,
        refresh_token: refresh.into_string(),
        token_type: "Bearer",
        expires_in: access.expires_in,
    })
}
