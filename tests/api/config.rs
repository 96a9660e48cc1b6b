//! First start and configuration: the data directory and its secrets, reuse
//! on a second start, flags over environment over TOML file, TLS by default
//! with the generated or the operator's certificate.

use crate::helpers::{client_trusting, spawn_app, spawn_with, Options};
use std::os::unix::fs::PermissionsExt;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn minutes_until(expires_at: &serde_json::Value) -> i64 {
    let t = chrono::DateTime::parse_from_rfc3339(expires_at.as_str().unwrap()).unwrap();
    (t.with_timezone(&chrono::Utc) - chrono::Utc::now() + chrono::Duration::seconds(30)).num_minutes()
}

#[tokio::test]
async fn first_start_makes_private_secrets_and_a_second_start_reuses_them() {
    let app = spawn_with(Options::default().fresh_keys()).await;
    let dir = app.data_dir();
    assert_eq!(mode(&dir), 0o700);
    for secret in
        ["jwt-signing-key.pem", "ca-key.pem", "server-key.pem", "admin-token.sha256", "admin.sock", "audit.jsonl"]
    {
        assert_eq!(mode(&dir.join(secret)), 0o600, "{secret}");
    }
    assert!(app.admin_token.starts_with("tdadm_") && app.admin_token.len() > 40);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&app.admin_token),
                "admin token stored in {}",
                path.display()
            );
        }
    }
    let key_before = std::fs::read(dir.join("jwt-signing-key.pem")).unwrap();
    let app = app.restart().await;
    assert_eq!(std::fs::read(app.data_dir().join("jwt-signing-key.pem")).unwrap(), key_before);
    assert_eq!(app.admin_get("/admin/status").await.0, 200, "the first token still works");
}

#[tokio::test]
async fn admin_token_from_the_environment() {
    let app = spawn_with(Options::default().env("ADMIN_TOKEN", "operator-chosen-token-of-32-characters")).await;
    assert!(!app.output().iter().any(|l| l.contains("Admin token (shown only")));
    assert_eq!(app.admin_get("/admin/status").await.0, 200);
    let scratch = tempfile::tempdir().unwrap();
    let refused = std::process::Command::new(crate::helpers::binary())
        .args(["serve", "--data-dir"])
        .arg(scratch.path().join("data"))
        .args(["--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"])
        .env("ADMIN_TOKEN", "short-token")
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a short operator token must stop the start");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("at least 32 characters"));
}

#[tokio::test]
async fn flags_beat_environment_beat_file() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("topdog.toml");
    std::fs::write(
        &file,
        "invite_expiry = \"9m\"\nbase_url = \"https://pair.example.test:9443\"\nqr_require_otp = true\n",
    )
    .unwrap();
    let from_file = spawn_with(Options::default().arg("--config").arg(file.to_str().unwrap())).await;
    let (_, invite) = from_file.send_sms("+14155552671", "a").await;
    assert_eq!(minutes_until(&invite["expires_at"]), 9);
    let (_, qr) = from_file.admin_post("/phone/pairing/generate-qr", serde_json::json!({"user_id": "a"})).await;
    assert!(qr["pairing_url"].as_str().unwrap().starts_with("https://pair.example.test:9443/pair?code="));
    assert!(qr["otp"].is_string(), "qr_require_otp from the file");
    drop(from_file);

    let env_over_file = spawn_with(
        Options::default()
            .arg("--config")
            .arg(file.to_str().unwrap())
            .env("PAIRING_INVITE_EXPIRY_MINUTES", "7")
            .env("PAIRING_QR_REQUIRE_OTP", "false"),
    )
    .await;
    let (_, invite) = env_over_file.send_sms("+14155552671", "a").await;
    assert_eq!(minutes_until(&invite["expires_at"]), 7);
    let (_, qr) = env_over_file.admin_post("/phone/pairing/generate-qr", serde_json::json!({"user_id": "a"})).await;
    assert!(qr.get("otp").is_none());
    drop(env_over_file);

    let flag_over_env = spawn_with(
        Options::default()
            .arg("--config")
            .arg(file.to_str().unwrap())
            .arg("--invite-expiry")
            .arg("2m")
            .env("PAIRING_INVITE_EXPIRY_MINUTES", "7"),
    )
    .await;
    let (_, invite) = flag_over_env.send_sms("+14155552671", "a").await;
    assert_eq!(minutes_until(&invite["expires_at"]), 2);
}

#[tokio::test]
async fn base_url_from_the_environment_shapes_the_sms_link() {
    let mut app = spawn_with(Options::default().env("PAIRING_BASE_URL", "https://topdog.corp.example:8443/")).await;
    app.send_sms("+14155552671", "a").await;
    assert!(app.console_sms(1).await.contains("https://topdog.corp.example:8443/pair?code="));
}

#[tokio::test]
async fn a_bad_config_file_stops_the_start_with_a_clear_error() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("bad.toml");
    std::fs::write(&file, "invite_expiry = \"soon\"\n").unwrap();
    let out = std::process::Command::new(crate::helpers::binary())
        .args(["serve", "--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(scratch.path().join("d"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid config file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn https_only_unless_plain_http_is_asked_for() {
    let app = spawn_app().await;
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/healthz", app.port)).send().await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true), "no plaintext answer on the HTTPS port");
    let untrusted = reqwest::Client::new().get(app.url("/healthz")).send().await;
    assert!(untrusted.is_err(), "the certificate chains to the appliance CA, not a public one");
    drop(app);

    let insecure = spawn_with(Options::default().process().arg("--insecure-http")).await;
    assert!(insecure.base.starts_with("http://"));
    let ok = reqwest::get(insecure.url("/healthz")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(insecure.log().contains("serving plain HTTP"));
}

#[tokio::test]
async fn extra_names_and_the_operators_own_certificate() {
    let app = spawn_with(Options::default().arg("--tls-san").arg("topdog.corp.example")).await;
    let addr = format!("127.0.0.1:{}", app.port).parse().unwrap();
    let pem = std::fs::read(app.ca_file()).unwrap();
    let by_name = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve("topdog.corp.example", addr)
        .build()
        .unwrap();
    let ok = by_name.get(format!("https://topdog.corp.example:{}/healthz", app.port)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    drop(app);

    let scratch = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
    let (cert_file, key_file) = (scratch.path().join("cert.pem"), scratch.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let own = spawn_with(
        Options::default()
            .unlicensed()
            .arg("--tls-cert")
            .arg(cert_file.to_str().unwrap())
            .arg("--tls-key")
            .arg(key_file.to_str().unwrap()),
    )
    .await;
    let client = client_trusting(&cert_file);
    let ok = client.get(format!("https://localhost:{}/healthz", own.port)).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}
