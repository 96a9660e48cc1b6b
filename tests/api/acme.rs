//! Certificates by ACME against pebble (Let's Encrypt's test server): the
//! appliance gets one by TLS-ALPN-01 on its HTTPS port and by HTTP-01 on
//! its plain listener; a phone that trusts only pebble's root then pairs;
//! the certificate is kept across a restart, renewed at two thirds of its
//! lifetime while a connection stays open, and a failed renewal leaves it
//! serving and is reported.

use crate::certificates::{connect_as, healthz};
use crate::helpers::{accept_body, eventually, send, spawn_with, test_license, Options, TestApp};
use crate::pebble::{client_for, free_port, Pebble};
use crate::phone::Phone;
use serde_json::{json, Value};

pub(crate) const DOMAIN: &str = "pair.topdog.test";

/// An unlicensed appliance on `https` with `flags`; its clients then trust
/// only pebble's root and reach it by `DOMAIN` (the license is activated
/// by the test, through that client).
async fn appliance(pebble: &Pebble, https: u16, domains: &[&str], flags: &[&str]) -> TestApp {
    let mut options = Options::default().unlicensed().arg("--http-addr").arg(&format!("127.0.0.1:{https}"));
    for flag in pebble.flags(domains).iter().map(String::as_str).chain(flags.iter().copied()) {
        options = options.arg(flag);
    }
    let mut app = spawn_with(options).await;
    trust_only_pebble(&mut app, pebble);
    app
}

pub(crate) fn trust_only_pebble(app: &mut TestApp, pebble: &Pebble) {
    app.client = client_for(&pebble.issuing_root, DOMAIN, app.port);
    app.base = format!("https://{DOMAIN}:{}", app.port);
}

/// The status once a client trusting only pebble gets through.
pub(crate) async fn issued(app: &TestApp, pebble: &Pebble) -> Value {
    eventually(|| async {
        let answer = app.admin(reqwest::Method::GET, "/admin/status").send().await.map_err(|e| format!("{e:?}"))?;
        let status: Value = answer.json().await.map_err(|e| e.to_string())?;
        match status["acme"]["state"].as_str() {
            Some("valid") => Ok(status),
            _ => Err(format!("{status}\n{}", pebble.log())),
        }
    })
    .await
}

/// The DER of the leaf a new handshake for `DOMAIN` is shown.
pub(crate) async fn leaf_now(app: &TestApp, pebble: &Pebble) -> Vec<u8> {
    let conn = connect_as(app.port, &pebble.issuing_root, DOMAIN).await.expect("handshake");
    conn.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec()
}

/// The leaf `app` serves once it is no longer `first` (the certificate
/// renewed).
pub(crate) async fn renewed(app: &TestApp, pebble: &Pebble, first: &[u8]) -> Vec<u8> {
    eventually(|| async {
        let now = leaf_now(app, pebble).await;
        if now != first {
            Ok(now)
        } else {
            Err(pebble.log())
        }
    })
    .await
}

fn mode(path: std::path::PathBuf) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions()) & 0o777
}

#[cfg_attr(not(feature = "system-tests"), ignore = "needs pebble: the test command (tests/run.sh) installs it")]
#[tokio::test]
async fn by_tls_alpn_01_a_phone_trusting_only_the_public_root_pairs() {
    let https = free_port();
    let pebble = Pebble::start(free_port(), https).await;
    let flags = ["--acme-challenge", "tls-alpn-01", "--acme-http-addr", "off"];
    let app = appliance(&pebble, https, &[DOMAIN], &flags).await;

    let status = issued(&app, &pebble).await;
    assert_eq!(status["acme"]["challenge"], "tls-alpn-01");
    assert_eq!(status["acme"]["failures"], 0);
    assert_eq!(status["certificate"]["subject"], DOMAIN);
    assert!(status["certificate"]["issuer"].as_str().unwrap().starts_with("Pebble Intermediate"), "{status}");
    let (code, body) = app.admin_post("/admin/license", json!({"license_key": test_license()})).await;
    assert_eq!(code, 200, "{body}");

    let (code, qr) = app.admin_post("/phone/pairing/generate-qr", json!({"user_id": "alice"})).await;
    assert_eq!(code, 200, "{qr}");
    let link = qr["pairing_url"].as_str().unwrap();
    assert!(link.starts_with(&format!("https://{DOMAIN}:{https}/")), "pairing links use the ACME name: {link}");
    let page = app.client.get(link).send().await.expect("the phone opens the link without a warning");
    assert_eq!(page.status(), 200);
    let body = accept_body(qr["invite_code"].as_str().unwrap(), "alice-phone", qr["otp"].as_str());
    let (code, paired) = send(app.client.post(app.url("/phone/pairing/accept-invite")).json(&body)).await;
    assert_eq!(code, 200, "{paired}");
    assert_eq!(paired["mqtt_broker"], format!("{DOMAIN}:{}", app.mqtt_port));
    // MQTT keeps the appliance CA, which the phone was just given over the
    // connection pebble's root vouched for.
    let mut phone = Phone::connect(&app, &paired).await;
    phone.online(None).await;

    assert_eq!(mode(app.data_dir().join("acme-account.json")), 0o600);
    assert_eq!(mode(app.data_dir().join("acme-certificate.pem")), 0o600);
    let issued = app.audit().iter().filter(|e| e["action"] == "certificate.issue" && e["result"] == "ok").count();
    assert_eq!(issued, 1);
}

#[cfg_attr(not(feature = "system-tests"), ignore = "needs pebble: the test command (tests/run.sh) installs it")]
#[tokio::test]
async fn by_http_01_on_the_plain_listener_which_sends_everything_else_to_https_and_kept_across_a_restart() {
    let (https, plain) = (free_port(), free_port());
    // pebble's TLS-ALPN-01 port is one nobody listens on: only HTTP-01 can work.
    let pebble = Pebble::start(plain, free_port()).await;
    let flags = ["--acme-challenge", "http-01", "--acme-http-addr", &format!("127.0.0.1:{plain}")];
    let app = appliance(&pebble, https, &[DOMAIN, "mqtt.topdog.test"], &flags).await;

    let status = issued(&app, &pebble).await;
    assert_eq!(status["acme"]["challenge"], "http-01");
    assert_eq!(status["acme"]["domains"], json!([DOMAIN, "mqtt.topdog.test"]));
    let plain_client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let moved = plain_client.post(format!("http://127.0.0.1:{plain}/ca?x=1")).send().await.unwrap();
    assert_eq!(moved.status(), 308);
    assert_eq!(moved.headers()["location"], format!("https://{DOMAIN}:{https}/ca?x=1"));
    let closed = plain_client.get(format!("http://127.0.0.1:{plain}/.well-known/acme-challenge/old")).send().await;
    assert_eq!(closed.unwrap().status(), 404, "nothing answers for a challenge that is not open");

    let (code, backup) = app.admin_get("/admin/backup").await;
    assert_eq!(code, 200, "{backup}");
    for file in ["acme-account.json", "acme-certificate.pem"] {
        assert!(backup["files"][file].is_string(), "backups carry {file}");
    }

    let before = leaf_now(&app, &pebble).await;
    let mut app = app.restart().await;
    trust_only_pebble(&mut app, &pebble);
    assert_eq!(leaf_now(&app, &pebble).await, before, "the stored certificate serves from the first handshake");
    let (_, status) = app.admin_get("/admin/status").await;
    assert_eq!(status["acme"]["state"], "valid", "no new order at start: {status}");
    let orders = app.audit().iter().filter(|e| e["action"] == "certificate.issue").count();
    assert_eq!(orders, 1);
}

#[cfg_attr(not(feature = "system-tests"), ignore = "needs pebble: the test command (tests/run.sh) installs it")]
#[tokio::test]
async fn renewed_at_two_thirds_while_a_connection_stays_open_and_a_failure_keeps_the_certificate() {
    let https = free_port();
    let mut pebble = Pebble::start(free_port(), https).await;
    let flags = ["--acme-challenge", "tls-alpn-01", "--acme-http-addr", "off"];
    let app = appliance(&pebble, https, &[DOMAIN], &flags).await;
    let status = issued(&app, &pebble).await;
    let first = leaf_now(&app, &pebble).await;
    let mut open = connect_as(app.port, &pebble.issuing_root, DOMAIN).await.unwrap();
    assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK");

    let days_left = status["certificate"]["days_left"].as_i64().unwrap();
    let (_, moved) = app.admin_post("/admin/test/clock", json!({"shift_s": days_left * 86_400 / 2})).await;
    let (_, halfway) = app.admin_get("/admin/status").await;
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let (now, due) = (time(&moved["now"]), time(&halfway["acme"]["next_attempt"]));
    assert!(due > now, "half-way through its life it is not yet due: {halfway}");
    let third = chrono::Duration::days(days_left) / 3;
    assert!((due - now - third / 2).num_days().abs() <= 1, "due at two thirds: {halfway}");
    app.shift_clock(days_left * 86_400 / 5).await;
    let second = renewed(&app, &pebble, &first).await;
    assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK", "the connection opened before keeps working");
    assert_eq!(open.get_ref().1.peer_certificates().unwrap()[0].to_vec(), first);

    pebble.stop();
    app.shift_clock(days_left * 86_400 / 2).await;
    let status = eventually(|| async {
        let (_, status) = app.admin_get("/admin/status").await;
        match status["acme"]["state"].as_str() {
            Some("failing") => Ok(status),
            _ => Err(status.to_string()),
        }
    })
    .await;
    assert!(status["acme"]["failures"].as_u64().unwrap() >= 1, "{status}");
    assert!(status["acme"]["last_error"].as_str().unwrap().contains("ACME server"), "{status}");
    assert_eq!(leaf_now(&app, &pebble).await, second, "the certificate in force keeps serving");
    let metrics = app.admin(reqwest::Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l.starts_with("topdog_acme_failures ") && !l.ends_with(" 0")), "{metrics}");
    let failed = app.audit().iter().any(|e| e["action"] == "certificate.issue" && e["result"] == "acme_failed");
    assert!(failed, "the failure is audited");
}
