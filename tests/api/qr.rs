//! QR pairing: plain, with a separate OTP (enforced, wrong code refused,
//! five wrong codes cancel the token) and with the OTP inside the link.

use crate::helpers::{accept_body, code_in, spawn_app, spawn_with, Options};
use base64::Engine;
use serde_json::json;

#[tokio::test]
async fn qr_pairing_without_otp() {
    let app = spawn_app().await;
    let (status, qr) =
        app.admin_post("/phone/pairing/generate-qr", json!({"user_id": "alice", "user_name": "Alice"})).await;
    assert_eq!(status, 200, "{qr}");
    assert!(qr.get("otp").is_none());
    assert!(qr["qr_svg"].as_str().unwrap().contains("<svg"));
    let png = base64::engine::general_purpose::STANDARD.decode(qr["qr_png_base64"].as_str().unwrap()).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let url = qr["pairing_url"].as_str().unwrap();
    assert_eq!(code_in(url), qr["invite_code"].as_str().unwrap());
    let expires = chrono::DateTime::parse_from_rfc3339(qr["expires_at"].as_str().unwrap()).unwrap();
    let minutes = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    assert!((280..=300).contains(&minutes), "QR tokens last 5 minutes, got {minutes} s");
    let (status, accepted) = app.accept(&code_in(url), "qr-phone").await;
    assert_eq!((status, accepted["user_id"].as_str()), (200, Some("alice")), "{accepted}");
    assert_eq!(app.accept(&code_in(url), "qr-phone-2").await.0, 409);
}

#[tokio::test]
async fn qr_otp_is_enforced() {
    let app = spawn_with(Options::default().env("PAIRING_QR_REQUIRE_OTP", "true")).await;
    let (_, qr) = app.admin_post("/phone/pairing/generate-qr", json!({"user_id": "bob"})).await;
    let otp = qr["otp"].as_str().expect("otp shown beside the QR").to_owned();
    assert!(otp.len() == 6 && otp.chars().all(|c| c.is_ascii_digit()));
    assert!(!qr["pairing_url"].as_str().unwrap().contains("otp="));
    let code = qr["invite_code"].as_str().unwrap();
    let (status, missing) = app.post("/phone/pairing/accept-invite", accept_body(code, "p1", None)).await;
    assert_eq!((status, missing["error"].as_str()), (400, Some("otp_required")));
    let wrong = if otp == "000000" { "111111" } else { "000000" };
    let (status, refused) = app.post("/phone/pairing/accept-invite", accept_body(code, "p1", Some(wrong))).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("otp_invalid")));
    let (status, ok) = app.post("/phone/pairing/accept-invite", accept_body(code, "p1", Some(&otp))).await;
    assert_eq!(status, 200, "{ok}");
}

#[tokio::test]
async fn five_wrong_otps_cancel_the_token() {
    let app = spawn_with(Options::default().env("PAIRING_QR_REQUIRE_OTP", "1")).await;
    let (_, qr) = app.admin_post("/phone/pairing/generate-qr", json!({"user_id": "carol"})).await;
    let (code, otp) = (qr["invite_code"].as_str().unwrap(), qr["otp"].as_str().unwrap());
    let wrong = if otp == "123456" { "654321" } else { "123456" };
    for _ in 0..5 {
        assert_eq!(app.post("/phone/pairing/accept-invite", accept_body(code, "p1", Some(wrong))).await.0, 403);
    }
    let (status, refused) = app.post("/phone/pairing/accept-invite", accept_body(code, "p1", Some(otp))).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("invite_cancelled")));
}

#[tokio::test]
async fn embedded_otp_travels_in_the_link() {
    let app =
        spawn_with(Options::default().env("PAIRING_QR_REQUIRE_OTP", "true").env("PAIRING_QR_EMBED_OTP", "true")).await;
    let (_, qr) = app.admin_post("/phone/pairing/generate-qr", json!({"user_id": "dan"})).await;
    assert!(qr.get("otp").is_none(), "an embedded OTP is not shown separately: {qr}");
    let url = qr["pairing_url"].as_str().unwrap();
    let otp = url.split("otp=").nth(1).expect("otp in link");
    let code = code_in(url);
    assert_eq!(app.post("/phone/pairing/accept-invite", accept_body(&code, "p1", None)).await.0, 400);
    assert_eq!(app.post("/phone/pairing/accept-invite", accept_body(&code, "p1", Some(otp))).await.0, 200);
}
