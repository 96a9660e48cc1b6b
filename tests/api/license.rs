//! Offline licensing: keys issued with the development key, activation,
//! the seat limit exactly at its boundary, every tamper case, restarts and a
//! clock set back.

use crate::helpers::{binary, send, spawn_with, Options, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn dev_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("license-keys/dev-license-key.private")
}

/// `topdog license issue` with `extra` flags; the key it prints.
fn issue(signing_key: &Path, extra: &[&str]) -> String {
    let out = Command::new(binary())
        .args(["license", "issue", "--customer", "Acme Corp", "--signing-key"])
        .arg(signing_key)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn activate(app: &TestApp, key: &str) -> (u16, Value) {
    app.admin_post("/admin/license", json!({ "license_key": key })).await
}

#[tokio::test]
async fn without_a_license_there_is_one_seat() {
    let mut app = spawn_with(Options::default().unlicensed()).await;
    let (_, status) = app.admin_get("/admin/license").await;
    assert_eq!((status["state"].as_str(), status["seats"].as_u64()), (Some("unlicensed"), Some(1)));
    app.pair("alice", "a1").await;
    app.pair("alice", "a2").await;
    let (code, refused) = app.send_sms("+14155552671", "bob").await;
    assert_eq!((code, refused["error"].as_str()), (402, Some("seat_limit")), "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("all 1 seats"));
    let (code, _) = app.admin_post("/phone/pairing/generate-qr", json!({"user_id": "bob"})).await;
    assert_eq!(code, 402);
}

#[tokio::test]
async fn seats_are_enforced_exactly_at_the_boundary() {
    let mut app = spawn_with(Options::default().unlicensed()).await;
    let key = issue(&dev_key(), &["--seats", "2"]);
    let out =
        Command::new(binary()).args(["license", "activate", &key, "--data-dir"]).arg(app.data_dir()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, status) = app.admin_get("/admin/license").await;
    assert_eq!(
        (status["state"].as_str(), status["customer"].as_str(), status["seats"].as_u64()),
        (Some("licensed"), Some("Acme Corp"), Some(2))
    );

    app.pair("alice", "a1").await;
    let (_, b) = app.send_sms("+14155552671", "bob").await;
    let (_, c) = app.send_sms("+14155552671", "carol").await;
    assert_eq!(app.accept(b["invite_code"].as_str().unwrap(), "b1").await.0, 200);
    let (code, refused) = app.accept(c["invite_code"].as_str().unwrap(), "c1").await;
    assert_eq!((code, refused["error"].as_str()), (402, Some("seat_limit")));
    assert_eq!(app.send_sms("+14155552671", "dave").await.0, 402);
    assert_eq!(app.send_sms("+14155552671", "alice").await.0, 200, "a user with a seat can pair more phones");
    let (_, status) = app.admin_get("/admin/license").await;
    assert_eq!(status["seats_used"], 2);

    assert_eq!(send(app.admin(Method::DELETE, "/phone/devices/b1")).await.0, 200);
    assert_eq!(
        app.accept(c["invite_code"].as_str().unwrap(), "c1").await.0,
        200,
        "revoking bob's last device freed the seat"
    );
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("topdog_seats_licensed 2") && metrics.contains("topdog_seats_used 2"), "{metrics}");

    let app = app.restart().await;
    let (_, status) = app.admin_get("/admin/license").await;
    assert_eq!(
        (status["state"].as_str(), status["seats"].as_u64(), status["seats_used"].as_u64()),
        (Some("licensed"), Some(2), Some(2))
    );
}

#[tokio::test]
async fn every_tampered_or_foreign_key_is_refused_with_its_own_error() {
    let app = spawn_with(Options::default().unlicensed()).await;
    let scratch = tempfile::tempdir().unwrap();
    let other = scratch.path().join("other");
    assert!(Command::new(binary()).args(["license", "keygen", "--out"]).arg(&other).status().unwrap().success());
    let good = issue(&dev_key(), &["--seats", "3"]);
    let mut flipped = good.clone().into_bytes();
    let i = good.len() / 3;
    flipped[i] = if flipped[i] == b'x' { b'y' } else { b'x' };
    let cases = [
        ("flipped byte", String::from_utf8(flipped).unwrap(), "license_bad_signature"),
        ("another vendor key", issue(&other, &["--seats", "3"]), "license_unknown_key"),
        (
            "another machine",
            issue(&dev_key(), &["--seats", "3", "--machine", &"ab".repeat(32)]),
            "license_wrong_machine",
        ),
        ("expired", issue(&dev_key(), &["--seats", "3", "--expires", "2020-01-31"]), "license_expired"),
        ("not a key", "hello".to_owned(), "license_malformed"),
        ("future format", good.replacen("TDLIC1.", "TDLIC2.", 1), "license_unsupported_version"),
    ];
    for (case, key, code) in cases {
        let (status, body) = activate(&app, &key).await;
        assert_eq!((status, body["error"].as_str()), (400, Some(code)), "{case}: {body}");
    }
    let (_, status) = app.admin_get("/admin/license").await;
    assert_eq!(status["state"], "unlicensed", "nothing refused was stored");
    assert_eq!(activate(&app, &good).await.0, 200);
    let audit: Vec<Value> = app.audit().into_iter().filter(|e| e["action"] == "license.activate").collect();
    assert_eq!(audit.len(), 7);
    assert_eq!(audit[6]["result"], "ok");
}

#[tokio::test]
async fn a_clock_set_back_suspends_an_expiring_license_until_it_is_right() {
    let app = spawn_with(Options::default().unlicensed()).await;
    let key = issue(&dev_key(), &["--seats", "4", "--expires", "2099-12-31"]);
    assert_eq!(activate(&app, &key).await.0, 200);
    app.shift_clock(-3 * 24 * 3600).await;
    let (_, status) = app.admin_get("/admin/license").await;
    assert_eq!((status["state"].as_str(), status["seats"].as_u64()), (Some("expired"), Some(1)), "{status}");
    assert!(status["reason"].as_str().unwrap().contains("clock"), "{status}");
    app.shift_clock(3 * 24 * 3600).await;
    let (_, status) = app.admin_get("/admin/license").await;
    assert_eq!((status["state"].as_str(), status["seats"].as_u64()), (Some("licensed"), Some(4)));
}

#[tokio::test]
async fn a_license_without_expiry_ignores_the_clock() {
    let app = spawn_with(Options::default().unlicensed()).await;
    assert_eq!(activate(&app, &issue(&dev_key(), &["--seats", "2"])).await.0, 200);
    app.shift_clock(-30 * 24 * 3600).await;
    let (_, status) = app.admin_get("/admin/license").await;
    assert_eq!(status["state"], "licensed", "{status}");
}
