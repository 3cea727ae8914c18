//! Roles: self-registration never grants admin; `bridge admin grant` and
//! `revoke` change the role an account's next access token carries.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::common::{TestApp, database_url, root};

/// The claims of an access token (the signature is the host's business;
/// these tests look at what was issued).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Runs `bridge admin <action> <email>` against the app's database with
/// nothing but `database_url` set.
fn admin(app: &TestApp, action: &str, email: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bridge"))
        .current_dir(root())
        .args(["admin", action, email])
        .env("SPIN_VARIABLE_DATABASE_URL", database_url(&app.database))
        .env_remove("SPIN_VARIABLE_JWT_PRIVATE_KEY")
        .env_remove("SPIN_VARIABLE_JWT_PUBLIC_KEY")
        .env_remove("SPIN_VARIABLE_BRIDGE_SIGNING_SECRET")
        .output()
        .expect("the bridge binary runs")
}

#[tokio::test]
async fn self_registration_never_grants_admin() {
    let app = TestApp::spawn().await;
    let body = json!({"email": "eve@example.com", "password": "correct horse", "role": "admin"});
    let r = app.post_json("/auth/register", &body, None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["role"], "user", "the body's role is ignored");
    let login = app.login("eve@example.com", "correct horse").await;
    assert_eq!(login.status, 200, "{}", login.text);
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&token)["role"], "user");
}

#[tokio::test]
async fn bridge_admin_grant_and_revoke_change_the_next_token() {
    let app = TestApp::spawn().await;
    let (email, login) = app.signed_in_user().await;
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        claims(login["access_token"].as_str().unwrap())["role"],
        "user"
    );

    let out = admin(&app, "grant", &email.to_uppercase());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "grant: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("is now admin (was user)"), "{stdout}");

    let r = app.refresh(&refresh).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let granted = r.json();
    let access = granted["access_token"].as_str().unwrap();
    assert_eq!(
        claims(access)["role"],
        "admin",
        "a refresh picks up the change"
    );
    assert_eq!(app.me(access).await.json()["role"], "admin");

    let again = admin(&app, "grant", &email);
    assert!(String::from_utf8_lossy(&again.stdout).contains("was already admin"));

    let out = admin(&app, "revoke", &email);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = app
        .refresh(granted["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        claims(r.json()["access_token"].as_str().unwrap())["role"],
        "user"
    );
}

#[tokio::test]
async fn bridge_admin_names_an_unknown_account() {
    let app = TestApp::spawn().await;
    let out = admin(&app, "grant", "nobody@example.com");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no account is registered with the e-mail \"nobody@example.com\""),
        "{stderr}"
    );
}
