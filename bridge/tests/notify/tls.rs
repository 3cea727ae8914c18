//! The SMTP sink over TLS, as with a real provider: STARTTLS with a login
//! (port 587's setup) and implicit TLS, against an aiosmtpd whose
//! certificate a test CA signed. `bridge up` runs as a process trusting
//! that CA through `SSL_CERT_FILE`, as an operator would add a private
//! CA; the server's certificate and name are verified.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::address;
use super::bridge_up::BridgeUp;
use crate::common::smtp::{SmtpServer, SmtpTlsMode};

/// A CA and a certificate it signed for 127.0.0.1, in `dir`: (CA, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "spinmesh SMTP test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.crt"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// Sends one email through `bridge up` pointed at `smtp` (trusting `ca`)
/// and waits for it at the server.
async fn sends_through(smtp: &SmtpServer, ca: &Path) {
    let vars = smtp.variables();
    let mut env: Vec<(&str, &str)> = vec![("SSL_CERT_FILE", ca.to_str().unwrap())];
    let keys: Vec<(String, &String)> = vars
        .iter()
        .map(|(k, v)| (format!("SPIN_VARIABLE_{}", k.to_uppercase()), v))
        .collect();
    env.extend(keys.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let up = BridgeUp::start(&env).await;
    let to = address("tls");
    let r = reqwest::Client::new()
        .post(format!("{}/notify", up.base))
        .json(&json!({"user_id": "u1", "channel": "email", "message": "over TLS", "to": to}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let email = smtp.wait_for_email(&to).await;
    assert!(email.text.contains("over TLS"), "{}", email.text);
}

#[tokio::test]
async fn emails_go_over_starttls_with_a_login() {
    let dir = std::env::temp_dir().join(format!("smtp-tls-{}", uuid::Uuid::new_v4()));
    let (ca, cert, key) = certificates(&dir);
    let smtp = SmtpServer::start_with(
        SmtpTlsMode::Starttls { cert, key },
        Some(("mailer", "s3cret")),
    )
    .await;
    sends_through(&smtp, &ca).await;
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn emails_go_over_implicit_tls() {
    let dir = std::env::temp_dir().join(format!("smtp-tls-{}", uuid::Uuid::new_v4()));
    let (ca, cert, key) = certificates(&dir);
    let smtp = SmtpServer::start_with(SmtpTlsMode::Tls { cert, key }, None).await;
    sends_through(&smtp, &ca).await;
    std::fs::remove_dir_all(dir).ok();
}
