//! People and their phones: a new phone that must wait for an admin's
//! approval gets nothing until approved (and is revoked when rejected),
//! and a user's existing phones hear of a new one, with a "This wasn't me"
//! that revokes it at once.

use crate::helpers::{send, spawn_with, Options, TestApp};
use crate::messaging::sse_events;
use crate::phone::{connected, phone, Phone};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

async fn notify(app: &TestApp, user: &str) -> (u16, Value) {
    app.admin_post("/phone/notify", json!({"user_id": user, "title": "Build #7 passed"})).await
}

async fn me(app: &TestApp, paired: &Value) -> (u16, Value) {
    app.device_get("/phone/me", paired["jwt_token"].as_str().unwrap()).await
}

#[tokio::test]
async fn a_phone_waiting_for_approval_gets_nothing_until_an_admin_approves_it() {
    let mut app = spawn_with(Options::default().arg("--pairing-requires-approval")).await;
    let paired = app.pair_full("kim", "phone-k").await;
    assert_eq!(paired["status"], "pending_approval", "{paired}");
    let (status, own) = me(&app, &paired).await;
    assert_eq!((status, own["status"].as_str()), (200, Some("pending_approval")), "it may read its own state");
    let token = paired["jwt_token"].as_str().unwrap();
    let (status, refused) = app.device_get("/phone/notifications", token).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("device_pending_approval")), "{refused}");
    let (_c, mut waiting) = phone(&app, &paired, "phone-k");
    assert!(connected(&mut waiting).await.is_err(), "MQTT refuses a phone that waits for approval");
    let (status, answer) = notify(&app, "kim").await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("no_active_devices")), "nothing is delivered to it");
    let (_, listed) = app.admin_get("/phone/devices?user_id=kim").await;
    assert_eq!(listed["devices"][0]["status"], "pending_approval");

    let (status, approved) = send(app.admin(Method::POST, "/phone/devices/phone-k/approve")).await;
    assert_eq!((status, approved["status"].as_str()), (200, Some("active")), "{approved}");
    let mut live = Phone::connect(&app, &paired).await;
    let (status, sent) = notify(&app, "kim").await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(live.next("notification").await["id"], sent["id"]);
    let (status, again) = send(app.admin(Method::POST, "/phone/devices/phone-k/reject")).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (409, Some("device_not_pending")),
        "only a waiting phone is rejected"
    );
    let actions: Vec<String> = app.audit().iter().map(|l| format!("{} {}", l["action"], l["result"])).collect();
    assert!(actions.iter().any(|a| a == "\"device.approve\" \"ok\""), "{actions:?}");
}

#[tokio::test]
async fn a_rejected_phone_is_revoked_and_its_seat_freed_and_the_cli_approves() {
    let mut app = spawn_with(Options::default().arg("--pairing-requires-approval")).await;
    let paired = app.pair_full("lou", "phone-l").await;
    let other = app.pair_full("lee", "phone-e").await;
    let dir = app.data_dir();
    let approve = crate::cli::topdog(&["devices", "approve", "phone-e", "--data-dir", dir.to_str().unwrap()]);
    assert!(approve.status.success(), "{}", String::from_utf8_lossy(&approve.stderr));
    assert_eq!(me(&app, &other).await.1["status"], "active");
    let (status, rejected) = send(app.admin(Method::POST, "/phone/devices/phone-l/reject")).await;
    assert_eq!((status, rejected["status"].as_str()), (200, Some("revoked")), "{rejected}");
    let (status, refused) = me(&app, &paired).await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("device_revoked")), "{refused}");
    let (_, license) = app.admin_get("/admin/license").await;
    assert_eq!(license["seats_used"], 1, "lou's seat is free again: {license}");
    let (status, refused) = send(app.admin(Method::POST, "/phone/devices/phone-l/approve")).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("device_revoked")), "rejection is final");
}

#[tokio::test]
async fn a_users_phones_hear_of_a_new_one_and_this_wasnt_me_revokes_it_at_once() {
    let mut app = spawn_with(Options::default()).await;
    let first = app.pair_full("max", "phone-m1").await;
    let mut old = Phone::connect(&app, &first).await;
    let token = first["jwt_token"].as_str().unwrap().to_owned();
    let mut stream = app.client.get(app.url("/phone/events")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let second = app.pair_full("max", "phone-m2").await;
    let alert = old.next("notification").await;
    assert_eq!(alert["kind"], "new_device", "{alert}");
    assert_eq!(alert["device"]["device_id"], "phone-m2", "{alert}");
    assert_eq!(alert["device"]["from"], "127.0.0.1", "{alert}");
    let streamed = sse_events(&mut stream, 1).await;
    assert_eq!((streamed[0].0.as_str(), &streamed[0].1["id"]), ("notification", &alert["id"]), "and on the stream");
    let mut new = Phone::connect(&app, &second).await;
    let (_, new_list) = app.device_get("/phone/notifications", second["jwt_token"].as_str().unwrap()).await;
    assert_eq!(new_list["count"], 0, "the new phone is not told of itself: {new_list}");

    let path = format!("/phone/notifications/{}/not-me", alert["id"].as_str().unwrap());
    let by_new = second["jwt_token"].as_str().unwrap();
    let (status, refused) = send(app.client.post(app.url(&path)).bearer_auth(by_new)).await;
    assert_eq!((status, refused["error"].as_str()), (404, Some("notification_not_found")), "only a phone told");
    let (status, disowned) = send(app.client.post(app.url(&path)).bearer_auth(&token)).await;
    let started = std::time::Instant::now();
    assert_eq!((status, disowned["status"].as_str()), (200, Some("revoked")), "{disowned}");
    assert_eq!(new.next("control").await["action"], "revoked");
    new.dropped().await;
    assert!(started.elapsed() < Duration::from_secs(1), "closed after {:?}", started.elapsed());
    let (status, _) = me(&app, &second).await;
    assert_eq!(status, 401, "the disowned phone's token is refused");
    let audit = app.audit();
    let disown = audit.iter().find(|l| l["action"] == "device.disown").expect("audited");
    assert_eq!((disown["actor"].as_str(), disown["target"].as_str()), (Some("phone:phone-m1"), Some("phone-m2")));
    let (status, _) = notify(&app, "max").await;
    assert_eq!(status, 200, "the first phone still works");
}
