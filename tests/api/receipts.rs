//! Receipts: the requester reads how far each item got on each phone,
//! `stored → pushed → delivered → seen`, with times; the phone says what
//! it showed over HTTP (`POST /phone/seen`) or MQTT (`seen`), and only its
//! own items count.

use crate::helpers::{eventually, send, TestApp};
use crate::phone::Phone;
use crate::push_service::PushService;
use serde_json::{json, Value};

/// The receipt of the item at `path` (admin) on `device`.
async fn receipt(app: &TestApp, path: &str, device: &str) -> Value {
    let (status, tracked) = app.admin_get(path).await;
    assert_eq!(status, 200, "{tracked}");
    let receipts = tracked["receipts"].as_array().unwrap_or_else(|| panic!("receipts in {tracked}"));
    receipts.iter().find(|r| r["device_id"] == device).cloned().unwrap_or_else(|| panic!("{device} in {tracked}"))
}

/// Waits until the receipt on `device` reaches `state`.
async fn reaches(app: &TestApp, path: &str, device: &str, state: &str) -> Value {
    eventually(|| async {
        let found = receipt(app, path, device).await;
        if found["state"] == state {
            Ok(found)
        } else {
            Err(format!("{path} reaching {state} on {device}: {found}"))
        }
    })
    .await
}

async fn notify(app: &TestApp, title: &str) -> String {
    let (status, notified) = app.admin_post("/phone/notify", json!({"user_id": "rita", "title": title})).await;
    assert_eq!(status, 200, "{notified}");
    notified["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn receipts_move_stored_pushed_delivered_seen_over_http_and_mqtt() {
    let mut push = PushService::start().await;
    let mut app = crate::push::app_with(&push).await;
    let paired = app.pair_full("rita", "rita-phone").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();

    let quiet = notify(&app, "before push was on").await;
    let path = |id: &str| format!("/phone/notifications/{id}");
    let stored = receipt(&app, &path(&quiet), "rita-phone").await;
    assert_eq!(stored["state"], "stored", "{stored}");
    assert!(stored["stored_at"].is_string() && stored.get("seen_at").is_none(), "{stored}");

    let subscription = push.subscribe("rita");
    let (status, _) =
        send(app.client.post(app.url("/phone/push/subscriptions")).bearer_auth(&token).json(&subscription)).await;
    assert_eq!(status, 201);
    let pushed_id = notify(&app, "while the app is closed").await;
    push.wait_for(1).await;
    let pushed = reaches(&app, &path(&pushed_id), "rita-phone", "pushed").await;
    assert!(pushed["pushed_at"].is_string(), "{pushed}");

    let mut phone = Phone::connect(&app, &paired).await;
    phone.online(None).await;
    let replayed = phone.next_n("notification", 2).await;
    assert_eq!(replayed.iter().map(|n| n["id"].as_str().unwrap()).collect::<Vec<_>>(), [&quiet, &pushed_id]);
    let delivered = reaches(&app, &path(&pushed_id), "rita-phone", "delivered").await;
    assert!(delivered["delivered_at"].as_str() >= delivered["pushed_at"].as_str(), "in order: {delivered}");
    reaches(&app, &path(&quiet), "rita-phone", "delivered").await;

    phone.send_acked("seen", json!({"ids": [pushed_id]})).await;
    let seen = reaches(&app, &path(&pushed_id), "rita-phone", "seen").await;
    assert!(seen["seen_at"].as_str() >= seen["delivered_at"].as_str(), "in order: {seen}");

    let (status, counted) =
        send(app.client.post(app.url("/phone/seen")).bearer_auth(&token).json(&json!({"ids": [quiet]}))).await;
    assert_eq!((status, &counted["seen"]), (200, &json!(1)), "{counted}");
    assert_eq!(receipt(&app, &path(&quiet), "rita-phone").await["state"], "seen", "on disk when the 200 came");
    let (_, activity) = app.admin_get("/admin/activity").await;
    let listed = activity["notifications"].as_array().unwrap().iter().find(|n| n["id"] == quiet).cloned().unwrap();
    assert_eq!(listed["receipts"][0]["state"], "seen", "the console's activity view: {listed}");

    let approval = json!({"user_id": "rita", "title": "Deploy", "timeout_s": 300});
    let (status, asked) = app.admin_post("/phone/approvals", approval).await;
    assert_eq!(status, 201, "{asked}");
    let id = asked["id"].as_str().unwrap().to_owned();
    phone.next("approval_request").await;
    reaches(&app, &format!("/phone/approvals/{id}"), "rita-phone", "delivered").await;
    phone.send_acked("seen", json!({"ids": [id]})).await;
    reaches(&app, &format!("/phone/approvals/{id}"), "rita-phone", "seen").await;
}

#[tokio::test]
async fn a_phone_marks_only_its_own_items_seen() {
    let mut app = crate::helpers::spawn_app().await;
    let rita = app.pair("rita", "rita-phone").await;
    let sam = app.pair("sam", "sam-phone").await;
    let id = notify(&app, "for rita").await;
    let seen = |token: &str, body: Value| send(app.client.post(app.url("/phone/seen")).bearer_auth(token).json(&body));
    let (status, counted) = seen(&sam, json!({"ids": [id, "n00000000000000ee"]})).await;
    assert_eq!((status, &counted["seen"]), (200, &json!(0)), "{counted}");
    assert_eq!(receipt(&app, &format!("/phone/notifications/{id}"), "rita-phone").await["state"], "stored");
    for bad in [json!({"ids": ["../x"]}), json!({"ids": vec!["n1"; 101]}), json!({"id": [id]})] {
        let (status, refused) = seen(&rita, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {refused}");
    }
    let (status, missing) = app.admin_get("/phone/notifications/n00000000000000ee").await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("notification_not_found")));
    let (status, _) = send(app.client.get(app.url(&format!("/phone/notifications/{id}"))).bearer_auth(&rita)).await;
    assert_eq!(status, 401, "receipts are the requester's (admin) view");
}
