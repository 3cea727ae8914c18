//! Forged, tampered and expired tokens are all 401.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jwt_simple::prelude::*;
use serde_json::json;

use crate::common::TestApp;

fn claims(sub: &str, aud: &str, ttl: Duration) -> JWTClaims<serde_json::Value> {
    Claims::with_custom_claims(json!({"role": "admin"}), ttl)
        .with_issuer("spinmesh")
        .with_audience(aud)
        .with_subject(sub)
        .with_jwt_id(uuid::Uuid::new_v4().to_string())
}

/// A fresh user's access token and id (`sub`).
async fn signed_in(app: &TestApp) -> (String, String) {
    let (_, tokens) = app.signed_in_user().await;
    let token = tokens["access_token"].as_str().unwrap().to_string();
    let sub = app.me(&token).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    (token, sub)
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_string).collect()
}

#[tokio::test]
async fn forged_and_tampered_tokens_are_rejected() {
    let app = TestApp::spawn().await;
    let (valid, sub) = signed_in(&app).await;
    let valid = valid.as_str();

    let real_key =
        Ed25519KeyPair::from_bytes(&STANDARD.decode(&app.keys.private_key).unwrap()).unwrap();
    let public_raw = STANDARD.decode(&app.keys.public_key).unwrap();

    let other_key = Ed25519KeyPair::generate()
        .sign(claims(&sub, "spinmesh", Duration::from_mins(5)))
        .unwrap();

    let alg_none = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = segments(valid)[1].clone();
        format!("{header}.{payload}.")
    };

    let hs256_raw = HS256Key::from_bytes(&public_raw)
        .authenticate(claims(&sub, "spinmesh", Duration::from_mins(5)))
        .unwrap();
    let hs256_b64 = HS256Key::from_bytes(app.keys.public_key.as_bytes())
        .authenticate(claims(&sub, "spinmesh", Duration::from_mins(5)))
        .unwrap();

    let expired = {
        let mut c = claims(&sub, "spinmesh", Duration::from_secs(1));
        let past = Clock::now_since_epoch() - Duration::from_mins(10);
        c.issued_at = Some(past);
        c.invalid_before = Some(past);
        c.expires_at = Some(past + Duration::from_mins(1));
        real_key.sign(c).unwrap()
    };

    let tampered = {
        let parts = segments(valid);
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        payload["role"] = json!("admin");
        let forged = URL_SAFE_NO_PAD.encode(payload.to_string());
        format!("{}.{forged}.{}", parts[0], parts[2])
    };

    let wrong_audience = real_key
        .sign(claims(&sub, "someone-else", Duration::from_mins(5)))
        .unwrap();
    let wrong_issuer = real_key
        .sign(
            Claims::with_custom_claims(json!({"role": "user"}), Duration::from_mins(5))
                .with_issuer("evil")
                .with_audience("spinmesh")
                .with_subject(&sub)
                .with_jwt_id("x"),
        )
        .unwrap();

    let cases = [
        ("signed with another key", other_key),
        ("alg none", alg_none),
        ("HS256 keyed with the raw public key", hs256_raw),
        ("HS256 keyed with the encoded public key", hs256_b64),
        ("expired", expired),
        ("tampered payload", tampered),
        ("wrong audience", wrong_audience),
        ("wrong issuer", wrong_issuer),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (what, token) in cases {
        app.me(&token).await.assert_problem(401, what);
    }

    // The control: a correctly signed token of our own making is accepted.
    let good = real_key
        .sign(claims(&sub, "spinmesh", Duration::from_mins(5)))
        .unwrap();
    assert_eq!(app.me(&good).await.status, 200, "control token");
}

/// Whoever can write to Redis can write a verification mark; only the
/// functions can write one that verifies (an HMAC under their secret).
#[tokio::test]
async fn a_forged_verification_mark_does_not_let_a_forged_admin_token_in() {
    use sha2::Digest as _;

    let app = TestApp::spawn().await;
    let (valid, sub) = signed_in(&app).await;
    let valid = valid.as_str();
    // Claims that check out (issuer, audience, expiry, role admin), signed
    // with a key the app has never seen.
    let forged = Ed25519KeyPair::generate()
        .sign(claims(&sub, "spinmesh", Duration::from_mins(5)))
        .unwrap();
    let key = format!(
        "spinmesh:jwt:verified:{}",
        hex::encode(sha2::Sha256::digest(forged.as_bytes()))
    );
    let redis = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("1")
        .arg("EX")
        .arg(300)
        .query_async(&mut conn)
        .await
        .unwrap();

    let r = app.me(&forged).await;
    r.assert_problem(401, "a bare mark vouches for nothing");
    let admin_only = app
        .post_json(
            "/products",
            &json!({"name": "x", "price": "1.00", "stock": 1}),
            Some(&forged),
        )
        .await;
    admin_only.assert_problem(401, "nor does it open admin routes");

    // The genuine token's own mark (written by the function on its first
    // verification) still lets it through, request after request.
    for _ in 0..2 {
        assert_eq!(app.me(valid).await.status, 200);
    }
    let genuine_key = format!(
        "spinmesh:jwt:verified:{}",
        hex::encode(sha2::Sha256::digest(valid.as_bytes()))
    );
    let mark: String = redis::cmd("GET")
        .arg(&genuine_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        mark.len(),
        64,
        "the stored mark is an HMAC, not a flag: {mark}"
    );
}
