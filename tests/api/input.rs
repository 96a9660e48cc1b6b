//! Bad input of every kind gets a clear 4xx `{"error", "detail"}` and
//! changes nothing: no invite, no device, no audit line.

use crate::helpers::{accept_body, send, spawn_app, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

async fn snapshot(app: &TestApp) -> (usize, Value) {
    let (_, devices) = app.admin_get("/phone/devices").await;
    (app.audit().len(), devices)
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str, case: &str) {
    assert_eq!(status, want_status, "{case}: {body}");
    assert_eq!(body["error"], want_code, "{case}: {body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{case}: detail missing: {body}");
}

#[tokio::test]
async fn bad_pairing_input_is_refused_and_changes_nothing() {
    let mut app = spawn_app().await;
    app.pair("alice", "existing").await;
    let before = snapshot(&app).await;
    let send_sms = |body: &str| {
        app.admin(Method::POST, "/phone/pairing/send-sms")
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    let sms_cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed JSON", "{\"phone_number\": ".into(), 400, "invalid_json"),
        ("not an object", "[1,2,3]".into(), 400, "invalid_json"),
        ("missing field", json!({"phone_number": "+14155552671", "user_id": "a"}).to_string(), 400, "invalid_json"),
        (
            "wrong type",
            json!({"phone_number": 4155552671u64, "user_id": "a", "user_name": "A"}).to_string(),
            400,
            "invalid_json",
        ),
        (
            "bad phone",
            json!({"phone_number": "555-CALL-NOW", "user_id": "a", "user_name": "A"}).to_string(),
            400,
            "invalid_phone_number",
        ),
        (
            "short phone",
            json!({"phone_number": "+1 415", "user_id": "a", "user_name": "A"}).to_string(),
            400,
            "invalid_phone_number",
        ),
        (
            "bad user id",
            json!({"phone_number": "+14155552671", "user_id": "a/../b", "user_name": "A"}).to_string(),
            400,
            "invalid_field",
        ),
        (
            "empty name",
            json!({"phone_number": "+14155552671", "user_id": "a", "user_name": "  "}).to_string(),
            400,
            "invalid_field",
        ),
        (
            "oversize body",
            json!({"phone_number": "+14155552671", "user_id": "a", "user_name": "x".repeat(70_000)}).to_string(),
            413,
            "payload_too_large",
        ),
    ];
    for (case, body, status, code) in sms_cases {
        let (got, answer) = send(send_sms(&body)).await;
        assert_error(got, &answer, status, code, case);
    }
    let valid_shape = "A".repeat(43);
    let accept_cases = [
        ("unknown code", accept_body(&valid_shape, "p9", None), 404, "invite_not_found"),
        ("malformed code", accept_body("short", "p9", None), 400, "invalid_field"),
        ("bad device id", accept_body(&valid_shape, "p9/../x", None), 400, "invalid_field"),
        (
            "control chars",
            json!({"invite_code": valid_shape, "device_id": "p9", "device_name": "a\u{0}b", "device_type": "x", "os_version": "1", "app_version": "1"}),
            400,
            "invalid_field",
        ),
    ];
    for (case, body, status, code) in accept_cases {
        let (got, answer) = app.post("/phone/pairing/accept-invite", body).await;
        assert_error(got, &answer, status, code, case);
    }
    let (got, answer) = app.get("/phone/pairing/invite/..%2F..%2Fetc").await;
    assert_error(got, &answer, 400, "invalid_field", "path code");
    let (got, answer) = send(app.admin(Method::POST, "/phone/pairing/generate-qr").body("{}")).await;
    assert_error(got, &answer, 400, "invalid_json", "qr without user");
    let (got, answer) = send(app.admin(Method::POST, "/phone/devices/existing/explode")).await;
    assert_error(got, &answer, 404, "not_found", "unknown route");
    let (got, answer) = send(app.client.put(app.url("/phone/pairing/send-sms"))).await;
    assert_error(got, &answer, 405, "method_not_allowed", "wrong method");

    let after = snapshot(&app).await;
    let rejects = app.audit().iter().filter(|e| e["action"] == "invite.reject").count();
    assert_eq!(after.0 - rejects, before.0, "only refused accepts were audited");
    assert_eq!(after.1, before.1, "devices unchanged");
    let (_, me) = app.admin_get("/admin/status").await;
    assert_eq!(me["devices"]["active"], 1);
}

#[tokio::test]
async fn every_error_is_json_and_api_answers_are_not_cached() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let (status, health) = app.get("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}
