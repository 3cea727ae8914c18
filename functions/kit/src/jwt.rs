//! Access tokens: EdDSA (Ed25519) JWTs.
//!
//! Only the auth service holds the private key ([`TokenSigner`]); every other
//! service verifies with the public key alone ([`TokenVerifier`]). The
//! algorithm is pinned twice: the header must say `EdDSA` (so `none`, `HS256`
//! signed with the public key, and friends are refused before any crypto),
//! and jwt-simple's Ed25519 key only verifies Ed25519 signatures.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jwt_simple::prelude::*;
use uuid::Uuid;

use crate::domain::Role;
use crate::problem::ApiError;

/// Lifetime of an access token: 15 minutes.
pub const ACCESS_TOKEN_TTL_SECS: u64 = 15 * 60;
/// Clock skew tolerated on `exp`/`iat`.
pub const LEEWAY_SECS: u64 = 5;
/// The only accepted `alg` header value.
const ALGORITHM: &str = "EdDSA";

/// The private claims spinmesh adds to the registered ones.
#[derive(Debug, Serialize, Deserialize)]
struct RoleClaim {
    role: String,
    /// The account's token generation when the token was issued (see
    /// `bearer`): a password change or reset raises the account's
    /// generation, and every token of an older one is revoked. Tokens
    /// issued before the claim existed lack it and count as generation 0.
    #[serde(default, rename = "gen")]
    generation: u64,
}

/// A key that could not be loaded from its variable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

/// Why a presented token was refused. All of these are a 401.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments with a JSON header.
    #[error("the token is malformed")]
    Malformed,
    /// The header names an algorithm other than EdDSA.
    #[error("the token uses a disallowed algorithm ({0})")]
    Algorithm(String),
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// A required claim is missing or unusable.
    #[error("the token lacks a valid {0} claim")]
    Claim(&'static str),
    /// Bad signature, wrong issuer or audience, issued in the future, ...
    #[error("the token is invalid")]
    Invalid,
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        ApiError::Unauthorized(err.to_string())
    }
}

/// A freshly signed access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The compact JWT.
    pub token: String,
    /// Its unique id (`jti`), used to revoke it.
    pub jti: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// What a valid token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user (`sub`).
    pub user_id: Uuid,
    /// The user's role when the token was issued.
    pub role: Role,
    /// The token id (`jti`).
    pub jti: String,
    /// Expiry as seconds since the Unix epoch (`exp`).
    pub expires_at: u64,
    /// The account's token generation at issue time (`gen`; 0 when absent).
    pub generation: u64,
}

/// Signs access tokens; exists only in the auth service.
pub struct TokenSigner {
    key: Ed25519KeyPair,
    issuer: String,
    audience: String,
}

impl TokenSigner {
    /// Loads the key from standard base64 of the 64-byte Ed25519 key pair
    /// (`Ed25519KeyPair::to_bytes`).
    ///
    /// # Errors
    ///
    /// When the text is not base64 or not a key pair.
    pub fn from_base64(key_pair: &str, issuer: &str, audience: &str) -> Result<Self, KeyError> {
        let bytes = decode_key(key_pair)?;
        let key = Ed25519KeyPair::from_bytes(&bytes)
            .map_err(|e| KeyError(format!("not an Ed25519 key pair: {e}")))?;
        Ok(Self {
            key,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// Issues a 15-minute token for `user_id` with a random `jti`, carrying
    /// the account's current token `generation` (`gen`).
    ///
    /// # Errors
    ///
    /// Only if signing itself fails, which indicates a bug.
    pub fn issue(&self, user_id: Uuid, role: Role, generation: u64) -> anyhow::Result<AccessToken> {
        let jti = Uuid::new_v4().to_string();
        let claims = Claims::with_custom_claims(
            RoleClaim {
                role: role.as_str().to_owned(),
                generation,
            },
            Duration::from_secs(ACCESS_TOKEN_TTL_SECS),
        )
        .with_issuer(&self.issuer)
        .with_audience(&self.audience)
        .with_subject(user_id)
        .with_jwt_id(&jti);
        let token = self.key.sign(claims)?;
        Ok(AccessToken {
            token,
            jti,
            expires_in: ACCESS_TOKEN_TTL_SECS,
        })
    }

    /// The matching verifier (handy for the issuer itself and for tests).
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier {
            key: self.key.public_key(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
        }
    }
}

/// Verifies access tokens with the public key.
pub struct TokenVerifier {
    key: Ed25519PublicKey,
    issuer: String,
    audience: String,
}

impl TokenVerifier {
    /// Loads the key from standard base64 of the 32-byte Ed25519 public key.
    ///
    /// # Errors
    ///
    /// When the text is not base64 or not a public key.
    pub fn from_base64(public_key: &str, issuer: &str, audience: &str) -> Result<Self, KeyError> {
        let bytes = decode_key(public_key)?;
        let key = Ed25519PublicKey::from_bytes(&bytes)
            .map_err(|e| KeyError(format!("not an Ed25519 public key: {e}")))?;
        Ok(Self {
            key,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// Checks algorithm, signature, `iss`, `aud`, `exp` (required) and
    /// `iat`, and returns the token's subject, role and id.
    ///
    /// # Errors
    ///
    /// A [`TokenError`] saying why the token is refused.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let metadata = Token::decode_metadata(token).map_err(|_| TokenError::Malformed)?;
        if metadata.algorithm() != ALGORITHM {
            return Err(TokenError::Algorithm(metadata.algorithm().to_owned()));
        }
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from([self.issuer.clone()])),
            allowed_audiences: Some(HashSet::from([self.audience.clone()])),
            time_tolerance: Some(Duration::from_secs(LEEWAY_SECS)),
            ..VerificationOptions::default()
        };
        let claims = self
            .key
            .verify_token::<RoleClaim>(token, Some(options))
            .map_err(classify)?;
        extract(claims)
    }

    /// Every check [`verify`](Self::verify) makes except the signature:
    /// algorithm header, `iss`, `aud`, `exp`, `nbf`, `iat` and the claims
    /// spinmesh needs. Costs microseconds where the Ed25519 check costs a
    /// few hundred inside a guest; callers use it when the token's
    /// signature is already known good (see `bearer::authenticate`).
    ///
    /// # Errors
    ///
    /// A [`TokenError`] saying why the token is refused.
    pub fn inspect(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let metadata = Token::decode_metadata(token).map_err(|_| TokenError::Malformed)?;
        if metadata.algorithm() != ALGORITHM {
            return Err(TokenError::Algorithm(metadata.algorithm().to_owned()));
        }
        let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: JWTClaims<RoleClaim> =
            serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
        if claims.issuer.as_deref() != Some(self.issuer.as_str()) {
            return Err(TokenError::Invalid);
        }
        let audience_ok = claims
            .audiences
            .as_ref()
            .is_some_and(|a| a.contains(&HashSet::from([self.audience.clone()])));
        if !audience_ok {
            return Err(TokenError::Invalid);
        }
        let now = Clock::now_since_epoch();
        let leeway = Duration::from_secs(LEEWAY_SECS);
        let exp = claims.expires_at.ok_or(TokenError::Claim("exp"))?;
        if exp + leeway < now {
            return Err(TokenError::Expired);
        }
        let in_future = |t: Option<UnixTimeStamp>| t.is_some_and(|t| t > now + leeway);
        if in_future(claims.invalid_before) || in_future(claims.issued_at) {
            return Err(TokenError::Invalid);
        }
        extract(claims)
    }
}

/// The spinmesh claims of an already-checked token.
fn extract(claims: JWTClaims<RoleClaim>) -> Result<VerifiedToken, TokenError> {
    let expires_at = claims.expires_at.ok_or(TokenError::Claim("exp"))?.as_secs();
    let user_id = claims
        .subject
        .as_deref()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or(TokenError::Claim("sub"))?;
    let jti = claims
        .jwt_id
        .filter(|j| !j.is_empty())
        .ok_or(TokenError::Claim("jti"))?;
    let role = claims
        .custom
        .role
        .parse()
        .map_err(|_| TokenError::Claim("role"))?;
    Ok(VerifiedToken {
        user_id,
        role,
        jti,
        expires_at,
        generation: claims.custom.generation,
    })
}

fn classify(err: jwt_simple::Error) -> TokenError {
    match err.downcast_ref::<jwt_simple::JWTError>() {
        Some(jwt_simple::JWTError::TokenHasExpired) => TokenError::Expired,
        _ => TokenError::Invalid,
    }
}

fn decode_key(text: &str) -> Result<Vec<u8>, KeyError> {
    STANDARD
        .decode(text.trim())
        .map_err(|e| KeyError(format!("key is not standard base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        let pair = Ed25519KeyPair::generate();
        TokenSigner::from_base64(&STANDARD.encode(pair.to_bytes()), "spinmesh", "spinmesh").unwrap()
    }

    fn verifier_for(signer: &TokenSigner, issuer: &str, audience: &str) -> TokenVerifier {
        let public = STANDARD.encode(signer.key.public_key().to_bytes());
        TokenVerifier::from_base64(&public, issuer, audience).unwrap()
    }

    fn claims(ttl_secs: u64) -> JWTClaims<RoleClaim> {
        Claims::with_custom_claims(
            RoleClaim {
                role: "user".into(),
                generation: 0,
            },
            Duration::from_secs(ttl_secs),
        )
        .with_issuer("spinmesh")
        .with_audience("spinmesh")
        .with_subject(Uuid::new_v4())
        .with_jwt_id("jti-1")
    }

    #[test]
    fn issued_tokens_verify_with_the_public_key() {
        let signer = signer();
        let user = Uuid::new_v4();
        let issued = signer.issue(user, Role::Admin, 7).unwrap();
        let verified = verifier_for(&signer, "spinmesh", "spinmesh")
            .verify(&issued.token)
            .unwrap();
        assert_eq!(verified.user_id, user);
        assert_eq!(verified.role, Role::Admin);
        assert_eq!(verified.jti, issued.jti);
        assert_eq!(verified.generation, 7);
        assert_eq!(issued.expires_in, 900);
    }

    #[test]
    fn every_token_gets_a_fresh_jti() {
        let signer = signer();
        let a = signer.issue(Uuid::new_v4(), Role::User, 0).unwrap();
        let b = signer.issue(Uuid::new_v4(), Role::User, 0).unwrap();
        assert_ne!(a.jti, b.jti);
    }

    #[test]
    fn tokens_for_another_issuer_or_audience_are_refused() {
        let signer = signer();
        let token = signer.issue(Uuid::new_v4(), Role::User, 0).unwrap().token;
        assert!(
            verifier_for(&signer, "other", "spinmesh")
                .verify(&token)
                .is_err()
        );
        assert!(
            verifier_for(&signer, "spinmesh", "other")
                .verify(&token)
                .is_err()
        );
    }

    #[test]
    fn tokens_signed_by_another_key_are_refused() {
        let token = signer().issue(Uuid::new_v4(), Role::User, 0).unwrap().token;
        assert!(signer().verifier().verify(&token).is_err());
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let signer = signer();
        let token = signer.issue(Uuid::new_v4(), Role::User, 0).unwrap().token;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let payload = URL_SAFE_NO_PAD.decode(&parts[1]).unwrap();
        let forged = String::from_utf8(payload)
            .unwrap()
            .replace("\"user\"", "\"admin\"");
        parts[1] = URL_SAFE_NO_PAD.encode(forged);
        assert!(signer.verifier().verify(&parts.join(".")).is_err());
    }

    #[test]
    fn expired_tokens_are_refused_as_expired() {
        let signer = signer();
        let mut expired = claims(60);
        let past = Clock::now_since_epoch() - Duration::from_secs(120);
        expired.issued_at = Some(past);
        expired.invalid_before = Some(past);
        expired.expires_at = Some(past + Duration::from_secs(60));
        let token = signer.key.sign(expired).unwrap();
        assert!(matches!(
            signer.verifier().verify(&token),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn tokens_without_exp_are_refused() {
        let signer = signer();
        let mut forever = claims(60);
        forever.expires_at = None;
        let token = signer.key.sign(forever).unwrap();
        assert!(matches!(
            signer.verifier().verify(&token),
            Err(TokenError::Claim("exp"))
        ));
    }

    #[test]
    fn alg_none_is_refused() {
        let signer = signer();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = serde_json::to_vec(&claims(60)).unwrap();
        let token = format!("{header}.{}.", URL_SAFE_NO_PAD.encode(body));
        assert!(matches!(
            signer.verifier().verify(&token),
            Err(TokenError::Algorithm(_))
        ));
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        let signer = signer();
        let public = signer.key.public_key().to_bytes();
        let token = HS256Key::from_bytes(&public)
            .authenticate(claims(60))
            .unwrap();
        assert!(matches!(
            signer.verifier().verify(&token),
            Err(TokenError::Algorithm(_))
        ));
    }

    #[test]
    fn tokens_without_a_generation_count_as_generation_0() {
        let signer = signer();
        let older = Claims::with_custom_claims(
            serde_json::json!({"role": "user"}),
            Duration::from_secs(60),
        )
        .with_issuer("spinmesh")
        .with_audience("spinmesh")
        .with_subject(Uuid::new_v4())
        .with_jwt_id("jti-2");
        let token = signer.key.sign(older).unwrap();
        assert_eq!(signer.verifier().verify(&token).unwrap().generation, 0);
    }

    #[test]
    fn garbage_is_malformed() {
        for junk in ["", "abc", "a.b.c", "..", "🦀.🦀.🦀"] {
            assert!(signer().verifier().verify(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn bad_key_material_is_a_key_error() {
        assert!(TokenVerifier::from_base64("not base64!", "i", "a").is_err());
        assert!(TokenVerifier::from_base64(&STANDARD.encode([0u8; 5]), "i", "a").is_err());
        assert!(TokenSigner::from_base64(&STANDARD.encode([0u8; 32]), "i", "a").is_err());
    }

    #[test]
    fn inspect_agrees_with_verify_on_claims_but_skips_the_signature() {
        let signer = signer();
        let verifier = signer.verifier();
        let issued = signer.issue(Uuid::new_v4(), Role::User, 0).unwrap();
        assert_eq!(
            verifier.inspect(&issued.token).unwrap(),
            verifier.verify(&issued.token).unwrap()
        );
        // Another key's token passes inspection (claims are fine) but not
        // verification: inspection alone is never enough.
        let foreign = signer_with_same_claims();
        assert!(verifier.inspect(&foreign).is_ok());
        assert!(verifier.verify(&foreign).is_err());
    }

    fn signer_with_same_claims() -> String {
        signer().issue(Uuid::new_v4(), Role::User, 0).unwrap().token
    }

    #[test]
    fn inspect_refuses_bad_claims() {
        let signer = signer();
        let mut expired = claims(60);
        let past = Clock::now_since_epoch() - Duration::from_secs(120);
        expired.issued_at = Some(past);
        expired.expires_at = Some(past + Duration::from_secs(60));
        let expired = signer.key.sign(expired).unwrap();
        assert!(matches!(
            signer.verifier().inspect(&expired),
            Err(TokenError::Expired)
        ));
        let other_aud = signer.issue(Uuid::new_v4(), Role::User, 0).unwrap().token;
        assert!(
            verifier_for(&signer, "spinmesh", "other")
                .inspect(&other_aud)
                .is_err()
        );
        assert!(
            verifier_for(&signer, "other", "spinmesh")
                .inspect(&other_aud)
                .is_err()
        );
        let hs = HS256Key::from_bytes(b"a key of at least 96 bits")
            .authenticate(claims(60))
            .unwrap();
        assert!(matches!(
            signer.verifier().inspect(&hs),
            Err(TokenError::Algorithm(_))
        ));
        assert!(signer.verifier().inspect("a.b.c").is_err());
    }
}
