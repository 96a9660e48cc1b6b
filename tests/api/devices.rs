//! Device lifecycle: list (admin only), suspend, reactivate, revoke — each
//! taking effect on the device's next request.

use crate::helpers::{send, spawn_app, spawn_with, Options};
use reqwest::Method;

#[tokio::test]
async fn suspend_reactivate_revoke() {
    let mut app = spawn_app().await;
    let token = app.pair("alice", "phone-a").await;
    let (status, _) = send(app.admin(Method::POST, "/phone/devices/phone-a/suspend")).await;
    assert_eq!(status, 200);
    let (status, refused) = app.device_get("/phone/me", &token).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("device_suspended")));
    let (_, list) = app.admin_get("/phone/devices").await;
    assert_eq!(list["devices"][0]["status"], "suspended");

    let (status, _) = send(app.admin(Method::POST, "/phone/devices/phone-a/reactivate")).await;
    assert_eq!(status, 200);
    assert_eq!(app.device_get("/phone/me", &token).await.0, 200);

    let (status, revoked) = send(app.admin(Method::DELETE, "/phone/devices/phone-a")).await;
    assert_eq!((status, revoked["status"].as_str()), (200, Some("revoked")));
    let (status, refused) = app.device_get("/phone/me", &token).await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("device_revoked")));
    let (status, final_) = send(app.admin(Method::POST, "/phone/devices/phone-a/reactivate")).await;
    assert_eq!((status, final_["error"].as_str()), (409, Some("device_revoked")));
    assert_eq!(send(app.admin(Method::DELETE, "/phone/devices/phone-a")).await.0, 200, "revoking twice is harmless");
    let (status, missing) = send(app.admin(Method::DELETE, "/phone/devices/no-such")).await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("device_not_found")));
}

#[tokio::test]
async fn device_routes_need_the_admin_token() {
    let mut app = spawn_app().await;
    app.pair("bob", "phone-b").await;
    let (status, body) = app.get("/phone/devices").await;
    assert_eq!((status, body["error"].as_str()), (401, Some("admin_token_required")));
    let (status, body) = send(app.client.get(app.url("/phone/devices")).header("x-admin-token", "tdadm_guess")).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("admin_token_invalid")));
    let (status, _) = send(app.client.delete(app.url("/phone/devices/phone-b"))).await;
    assert_eq!(status, 401);
    let (_, list) = app.admin_get("/phone/devices").await;
    assert_eq!(list["devices"][0]["status"], "active", "the refused revoke changed nothing");
    assert!(app.audit().iter().any(|e| e["action"] == "admin.auth" && e["result"] == "admin_token_invalid"));
}

#[tokio::test]
async fn list_filters_by_user() {
    let mut app = spawn_app().await;
    app.pair("carol", "c1").await;
    app.pair("carol", "c2").await;
    app.pair("dan", "d1").await;
    let (_, all) = app.admin_get("/phone/devices").await;
    assert_eq!(all["count"], 3);
    let (_, carol) = app.admin_get("/phone/devices?user_id=carol").await;
    let ids: Vec<&str> =
        carol["devices"].as_array().unwrap().iter().map(|d| d["device_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"c1") && ids.contains(&"c2"));
    let (status, _) = app.admin_get("/phone/devices?user_id=bad%2Fid").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn admin_gate_can_be_turned_off_for_devices_only() {
    let mut app = spawn_with(Options::default().env("PHONE_DEVICES_REQUIRE_ADMIN", "false")).await;
    app.pair("erin", "e1").await;
    assert_eq!(app.get("/phone/devices").await.0, 200);
    assert!(app.log().contains("PHONE_DEVICES_REQUIRE_ADMIN is off"), "a loud warning is logged");
    let (status, _) = app
        .post(
            "/phone/pairing/send-sms",
            serde_json::json!({"phone_number": "+14155552671", "user_id": "x", "user_name": "X"}),
        )
        .await;
    assert_eq!(status, 401, "pairing stays admin-only");
}

#[tokio::test]
async fn pairing_a_paired_device_id_again_is_refused_until_revoked() {
    let mut app = spawn_app().await;
    app.pair("frank", "same-id").await;
    let (_, invite) = app.send_sms("+14155552671", "frank").await;
    let code = invite["invite_code"].as_str().unwrap().to_owned();
    let (status, refused) = app.accept(&code, "same-id").await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("device_exists")));
    send(app.admin(Method::DELETE, "/phone/devices/same-id")).await;
    assert_eq!(app.accept(&code, "same-id").await.0, 200, "the invite was not used up by the refusal");
}

#[tokio::test]
async fn guessing_the_admin_token_is_rate_limited() {
    let app = spawn_with(Options::default().arg("--rate-invites-per-minute").arg("3")).await;
    let guess = || send(app.client.get(app.url("/phone/devices")).header("x-admin-token", "tdadm_guess"));
    for _ in 0..3 {
        assert_eq!(guess().await.0, 401);
    }
    let (status, body) = guess().await;
    assert_eq!((status, body["error"].as_str()), (429, Some("rate_limited")));
    let audited = app.audit().iter().filter(|e| e["action"] == "admin.auth").count();
    assert_eq!(audited, 3, "refused guesses past the limit are not written to the audit log");
    assert_eq!(app.admin_get("/phone/devices").await.0, 200, "the real token is not limited");
}
