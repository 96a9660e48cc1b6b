//! Web Push to a phone whose app is closed, against the local push service
//! (`push_service`): what it receives is signed, encrypted and exactly the
//! message; its answers are honoured (gone, retry after, unreachable until
//! the TTL); endpoints are checked; subscriptions go with their device.

use crate::helpers::{eventually, send, spawn_with, Options, TestApp};
use crate::push_service::PushService;
use serde_json::{json, Value};
use std::time::Duration;

pub async fn app_with(push: &PushService) -> TestApp {
    let options = Options::default()
        .arg("--push-allowed-hosts")
        .arg("127.0.0.1")
        .arg("--push-ca-cert")
        .arg(push.ca_file().to_str().unwrap());
    spawn_with(options).await
}

async fn register(app: &TestApp, token: &str, subscription: &Value) -> (u16, Value) {
    send(app.client.post(app.url("/phone/push/subscriptions")).bearer_auth(token).json(subscription)).await
}

async fn notify(app: &TestApp, user: &str, title: &str, priority: u8) -> String {
    let body = json!({"user_id": user, "title": title, "body": "details", "priority": priority});
    let (status, notified) = app.admin_post("/phone/notify", body).await;
    assert_eq!(status, 200, "{notified}");
    notified["id"].as_str().unwrap().to_owned()
}

/// Waits until the push counter for `outcome` in `/metrics` reaches `n`.
async fn wait_for_pushes(app: &TestApp, outcome: &str, n: u64) {
    let line = format!("topdog_push_messages_total{{outcome=\"{outcome}\"}} ");
    eventually(|| async {
        let text = app.admin(reqwest::Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
        let count = text.lines().find_map(|l| l.strip_prefix(&line)).and_then(|v| v.parse::<u64>().ok());
        if count.unwrap_or(0) >= n {
            Ok(())
        } else {
            Err(format!("{outcome} reaching {n}:\n{text}"))
        }
    })
    .await
}

#[tokio::test]
async fn a_closed_app_gets_every_message_signed_and_encrypted_for_it_alone() {
    let mut push = PushService::start().await;
    let mut app = app_with(&push).await;
    let token = app.pair("alice", "alice-phone").await;
    let (status, key) = app.device_get("/phone/push/key", &token).await;
    assert_eq!(status, 200, "{key}");
    let subscription = push.subscribe("alice");
    let (status, created) = register(&app, &token, &subscription).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(register(&app, &token, &subscription).await.0, 200, "the same endpoint again replaces it");
    let (_, listed) = app.device_get("/phone/push/subscriptions", &token).await;
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["subscriptions"][0]["endpoint"], subscription["endpoint"]);
    assert!(listed["subscriptions"][0].get("keys").is_none(), "keys are never shown: {listed}");

    let urgent = notify(&app, "alice", "Build #42 failed", 5).await;
    let quiet = notify(&app, "alice", "Nightly report", 1).await;
    let got = push.wait_for(2).await;
    assert!(push.refusals().is_empty(), "{:?}", push.refusals());
    assert_eq!(push.vapid_keys()[0], key["public_key"].as_str().unwrap(), "signed with the key the app was given");
    let by_id = |id: &str| got.iter().find(|r| r.json["id"] == id).cloned().unwrap();
    let (first, second) = (by_id(&urgent), by_id(&quiet));
    let (_, listed) = app.device_get("/phone/notifications?since=all", &token).await;
    let stored = listed["notifications"].as_array().unwrap().iter().find(|n| n["id"] == urgent).unwrap().clone();
    for field in ["id", "time", "title", "body", "priority", "kind"] {
        assert_eq!(first.json[field], stored[field], "{field}: {} vs {stored}", first.json);
    }
    assert_eq!(first.json["type"], "notification");
    assert_eq!((first.urgency.as_deref(), second.urgency.as_deref()), (Some("high"), Some("low")));
    let four_weeks = 28 * 24 * 3600;
    assert!(
        first.ttl > four_weeks - 60 && first.ttl <= four_weeks,
        "TTL {}: 30 days' retention, cut to 4 weeks",
        first.ttl
    );

    let approval = json!({"user_id": "alice", "title": "Deploy 1.4", "timeout_s": 120});
    let (status, asked) = app.admin_post("/phone/approvals", approval).await;
    assert_eq!(status, 201, "{asked}");
    let got = push.wait_for(3).await;
    let pushed = got.iter().find(|r| r.json["type"] == "approval_request").unwrap();
    assert_eq!(pushed.json["id"], asked["id"]);
    assert_eq!(pushed.urgency.as_deref(), Some("high"));
    assert!(pushed.topic.is_some(), "a newer message about it replaces this one");
    assert_eq!(first.topic, None, "each notification is its own");
    assert!(pushed.ttl <= 120 && pushed.ttl > 100, "TTL {}: the approval's remaining time", pushed.ttl);
    assert!(pushed.json.get("code").is_none(), "the number to match never travels: {}", pushed.json);
    wait_for_pushes(&app, "sent", 3).await;
}

#[tokio::test]
async fn gone_subscriptions_are_removed_and_busy_services_are_retried_after_their_wait() {
    let mut push = PushService::start().await;
    let mut app = app_with(&push).await;
    let token = app.pair("bob", "bob-phone").await;
    assert_eq!(register(&app, &token, &push.subscribe("gone")).await.0, 201);
    assert_eq!(register(&app, &token, &push.subscribe("busy")).await.0, 201);
    push.answer_next("gone", 410, None);
    push.answer_next("busy", 429, Some(1));
    notify(&app, "bob", "Build #7 passed", 3).await;
    let got = push.wait_for(1).await;
    assert_eq!(got[0].sub, "busy");
    let tries = push.tries("busy");
    assert_eq!(tries.len(), 2, "one 429, then the retry");
    assert!(tries[1] - tries[0] >= Duration::from_millis(950), "retried after {:?}", tries[1] - tries[0]);
    wait_for_pushes(&app, "gone", 1).await;
    let (_, listed) = app.device_get("/phone/push/subscriptions", &token).await;
    let endpoints: Vec<&str> =
        listed["subscriptions"].as_array().unwrap().iter().map(|s| s["endpoint"].as_str().unwrap()).collect();
    assert_eq!(endpoints.len(), 1, "{listed}");
    assert!(endpoints[0].ends_with("/push/busy"), "{listed}");
    assert!(push.received_by("gone").is_empty());
}

#[tokio::test]
async fn an_unreachable_push_service_is_retried_until_the_message_expires() {
    let push = PushService::start().await;
    let mut app = app_with(&push).await;
    let token = app.pair("carol", "carol-phone").await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut subscription = push.subscribe("nowhere");
    subscription["endpoint"] = json!(format!("https://127.0.0.1:{port}/push/nowhere"));
    assert_eq!(register(&app, &token, &subscription).await.0, 201);
    let approval = json!({"user_id": "carol", "title": "Deploy", "timeout_s": 10});
    assert_eq!(app.admin_post("/phone/approvals", approval).await.0, 201);
    wait_for_pushes(&app, "retried", 2).await;
    wait_for_pushes(&app, "expired", 1).await;
}

#[tokio::test]
async fn only_https_endpoints_on_push_services_or_listed_hosts_are_kept() {
    let push = PushService::start().await;
    let mut app = app_with(&push).await;
    let token = app.pair("dave", "dave-phone").await;
    let good = push.subscribe("dave");
    let with_endpoint = |endpoint: &str| {
        let mut s = good.clone();
        s["endpoint"] = json!(endpoint);
        s
    };
    for endpoint in [
        "http://127.0.0.1/push/x",
        "https://push.internal.example/x",
        "https://10.0.0.1/x",
        "https://127.0.0.2/x",
        "https://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
    ] {
        let (status, refused) = register(&app, &token, &with_endpoint(endpoint)).await;
        assert_eq!((status, refused["error"].as_str()), (400, Some("push_endpoint_refused")), "{endpoint}: {refused}");
    }
    let mut bad_keys = good.clone();
    bad_keys["keys"]["auth"] = json!("c2hvcnQ");
    let (status, refused) = register(&app, &token, &bad_keys).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("push_keys_invalid")), "{refused}");
    let (status, refused) = register(&app, &token, &json!({"endpoint": good["endpoint"]})).await;
    assert_eq!(status, 400, "{refused}");
    for i in 0..5 {
        assert_eq!(register(&app, &token, &push.subscribe(&format!("d{i}"))).await.0, 201);
    }
    let (status, refused) = register(&app, &token, &push.subscribe("d5")).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("push_subscriptions_full")), "{refused}");
    let (_, listed) = app.device_get("/phone/push/subscriptions", &token).await;
    assert_eq!(listed["count"], 5, "nothing refused was kept: {listed}");
    let id = listed["subscriptions"][0]["id"].as_str().unwrap().to_owned();
    let remove = |id: &str| app.client.delete(app.url(&format!("/phone/push/subscriptions/{id}"))).bearer_auth(&token);
    assert_eq!(send(remove(&id)).await.0, 200);
    let (status, missing) = send(remove(&id)).await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("push_subscription_not_found")));
    assert_eq!(app.device_get("/phone/push/subscriptions", &token).await.1["count"], 4);
    let (status, _) = send(app.client.get(app.url("/phone/push/subscriptions"))).await;
    assert_eq!(status, 401, "a device token is needed");
}

#[tokio::test]
async fn a_suspended_phone_is_skipped_and_a_revoked_or_unpaired_one_loses_its_subscriptions() {
    let mut push = PushService::start().await;
    let mut app = app_with(&push).await;
    let kept = app.pair("erin", "erin-tablet").await;
    let token = app.pair("erin", "erin-phone").await;
    assert_eq!(register(&app, &kept, &push.subscribe("tablet")).await.0, 201);
    assert_eq!(register(&app, &token, &push.subscribe("phone")).await.0, 201);

    let (status, _) = app.admin_post("/phone/devices/erin-phone/suspend", json!({})).await;
    assert_eq!(status, 200);
    let got = push.wait_for(1).await;
    assert_eq!((got[0].sub.as_str(), &got[0].json["action"]), ("phone", &json!("suspended")), "told why");
    let while_suspended = notify(&app, "erin", "while suspended", 3).await;
    push.wait_for(2).await;
    assert_eq!(app.admin_post("/phone/devices/erin-phone/reactivate", json!({})).await.0, 200);
    let after = notify(&app, "erin", "after", 3).await;
    push.wait_for(4).await;
    let phone: Vec<Value> = push.received_by("phone").into_iter().map(|r| r.json["id"].clone()).collect();
    assert!(!phone.contains(&json!(while_suspended)), "nothing while suspended: {phone:?}");
    assert!(phone.contains(&json!(after)), "its subscription is used again once active: {phone:?}");

    let (status, _) = send(app.admin(reqwest::Method::DELETE, "/phone/devices/erin-phone")).await;
    assert_eq!(status, 200);
    let got = push.wait_for(5).await;
    assert_eq!(got[4].json["action"], "revoked", "told why: {:?}", got[4]);
    let (status, _) = send(app.client.delete(app.url("/phone/me")).bearer_auth(&kept)).await;
    assert_eq!(status, 200);
    push.wait_for(6).await;

    let again = app.pair("erin", "erin-tablet").await;
    let (_, listed) = app.device_get("/phone/push/subscriptions", &again).await;
    assert_eq!(listed["count"], 0, "paired again with none: {listed}");
    let again = app.pair("erin", "erin-phone").await;
    let (_, listed) = app.device_get("/phone/push/subscriptions", &again).await;
    assert_eq!(listed["count"], 0, "paired again with none: {listed}");
    assert_eq!(register(&app, &again, &push.subscribe("fresh")).await.0, 201);
    notify(&app, "erin", "to the new pairing", 3).await;
    push.wait_for(7).await;
    wait_for_pushes(&app, "sent", 7).await;
    let late: Vec<_> = push.received().into_iter().skip(6).map(|r| r.sub).collect();
    assert_eq!(late, ["fresh"], "nothing reaches the old subscriptions");
}
