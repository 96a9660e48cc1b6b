//! Notifications and approvals end to end, with a real phone on MQTT/TLS
//! (rumqttc), the HTTP routes and the live event stream: a notification
//! reaches the connected phone and is listed; a phone offline for 20
//! notifications and an appliance restart gets all 20 on reconnect, and
//! nothing twice that arrived live before its presence;
//! approvals are answered exactly once under a double answer over MQTT and
//! HTTP, refuse a wrong code, expire on time and call the webhook.

use crate::fakes;
use crate::helpers::{send, spawn_app, TestApp};
use crate::phone::Phone;
use serde_json::{json, Value};

async fn notify(app: &TestApp, body: Value) -> (u16, Value) {
    app.admin_post("/phone/notify", body).await
}

#[tokio::test]
async fn a_notification_reaches_the_connected_phone_and_is_listed() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("alice", "phone-a").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();
    let mut phone = Phone::connect(&app, &paired).await;
    let body = json!({"user_id": "alice", "title": "Build #42 failed", "body": "3 tests failed", "priority": 4,
                      "kind": "build_failure", "link": "https://ci.example/42"});
    let (status, sent) = notify(&app, body).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["delivered_to"], json!(["phone-a"]));
    let got = phone.next("notification").await;
    assert_eq!((got["type"].as_str(), got["id"].as_str()), (Some("notification"), sent["id"].as_str()));
    assert_eq!((got["title"].as_str(), got["priority"].as_u64()), (Some("Build #42 failed"), Some(4)));
    assert!(got["time"].is_string() && got["link"] == "https://ci.example/42", "{got}");

    let (status, listed) = app.device_get("/phone/notifications?since=all", &token).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["notifications"][0]["delivery"], "published");
    let id = sent["id"].as_str().unwrap();
    let (_, after) = app.device_get(&format!("/phone/notifications?since={id}"), &token).await;
    assert_eq!(after["count"], 0, "nothing after the newest");
    let (_, unacked) = app.device_get("/phone/notifications", &token).await;
    assert_eq!(unacked["count"], 0, "since= acknowledged it: {unacked}");
    let (_, all) = app.device_get("/phone/notifications?since=all", &token).await;
    assert_eq!(all["notifications"][0]["delivery"], "acknowledged");

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"topdog_mqtt_messages_total{direction="out",type="notification"} 1"#), "{metrics}");
    assert!(metrics.contains("topdog_phones_connected 1"), "{metrics}");
}

#[tokio::test]
async fn bad_notifications_are_refused_and_change_nothing() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("bob", "phone-b").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();
    let cases = [
        (json!({"user_id": "bob", "title": ""}), 400, "invalid_field"),
        (json!({"user_id": "bob", "title": "t", "priority": 9}), 400, "invalid_field"),
        (json!({"user_id": "bob", "title": "t", "link": "javascript:alert(1)"}), 400, "invalid_field"),
        (json!({"user_id": "bob", "title": "t", "kind": "Build Failed!"}), 400, "invalid_field"),
        (json!({"user_id": "bob", "title": "t", "surprise": 1}), 400, "invalid_json"),
        (json!({"title": "t"}), 400, "invalid_field"),
        (json!({"user_id": "nobody", "title": "t"}), 404, "no_active_devices"),
        (json!({"device_id": "ghost", "title": "t"}), 404, "device_not_found"),
    ];
    for (body, status, code) in cases {
        let (got, answer) = notify(&app, body.clone()).await;
        assert_eq!((got, answer["error"].as_str()), (status, Some(code)), "{body}: {answer}");
        assert!(answer["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let (status, _) =
        send(app.client.post(app.url("/phone/notify")).json(&json!({"user_id": "bob", "title": "t"}))).await;
    assert_eq!(status, 401, "the admin token is required");
    let (_, listed) = app.device_get("/phone/notifications?since=all", &token).await;
    assert_eq!(listed["count"], 0, "nothing was stored");
}

#[tokio::test]
async fn a_phone_offline_during_20_notifications_and_a_restart_gets_all_20() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("carol", "phone-c").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (status, sent) = notify(&app, json!({"user_id": "carol", "title": format!("n{i}")})).await;
        assert_eq!(status, 200, "{sent}");
        ids.push(sent["id"].as_str().unwrap().to_owned());
    }
    let app = app.restart().await;
    let mut phone = Phone::connect(&app, &paired).await;
    phone.online(None).await;
    let got = phone.next_n("notification", 20).await;
    let got_ids: Vec<&str> = got.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(got_ids, ids, "all 20, in order, once");
    let titles: Vec<&str> = got.iter().map(|m| m["title"].as_str().unwrap()).collect();
    assert_eq!(titles[19], "n19");

    // Coming back again with the newest id replays nothing; a new one arrives live.
    let mut phone = Phone::connect(&app, &paired).await;
    phone.online(Some(&ids[19])).await;
    let (_, live) = notify(&app, json!({"user_id": "carol", "title": "live"})).await;
    let next = phone.next("notification").await;
    assert_eq!(next["id"], live["id"], "the first message after reconnecting is the new one, not a replay");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let replayed = metrics.lines().find_map(|l| l.strip_prefix("topdog_notifications_replayed_total "));
    // 20, or 21 when the live one was stored before the phone's presence arrived.
    assert!(replayed.and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n >= 20), "{metrics}");
}

#[tokio::test]
async fn what_a_phone_got_live_before_its_presence_is_not_replayed_again() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("dora", "phone-d").await;
    let (_, missed) = notify(&app, json!({"user_id": "dora", "title": "while offline"})).await;
    let mut phone = Phone::connect(&app, &paired).await;
    let (_, live) = notify(&app, json!({"user_id": "dora", "title": "live, before the presence"})).await;
    assert_eq!(phone.next("notification").await["id"], live["id"]);
    phone.online(None).await;
    assert_eq!(phone.next("notification").await["id"], missed["id"], "the replay sends what was missed");
    let (_, after) = notify(&app, json!({"user_id": "dora", "title": "after"})).await;
    assert_eq!(phone.next("notification").await["id"], after["id"], "and not the live one a second time");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("topdog_notifications_replayed_total 1\n"), "{metrics}");
}

pub(crate) async fn ask(app: &TestApp, user: &str, timeout_s: u64, webhook: Option<String>) -> Value {
    let mut body =
        json!({"user_id": user, "title": "Deploy 1.4 to production?", "detail": "build 42", "timeout_s": timeout_s});
    if let Some(url) = webhook {
        body["webhook_url"] = json!(url);
    }
    let (status, approval) = app.admin_post("/phone/approvals", body).await;
    assert_eq!(status, 201, "{approval}");
    approval
}

#[tokio::test]
async fn an_approval_is_decided_exactly_once_under_a_double_answer() {
    let mut app = spawn_app().await;
    let mut hook = fakes::approval_hook().await;
    let paired = app.pair_full("dora", "phone-d").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();
    let mut phone = Phone::connect(&app, &paired).await;
    let approval = ask(&app, "dora", 300, Some(format!("{}/approvals", hook.url()))).await;
    let (id, code) = (approval["id"].as_str().unwrap().to_owned(), approval["code"].as_str().unwrap().to_owned());
    assert_eq!(approval["status"], "pending");
    assert!(code.len() == 2 && code.chars().all(|c| c.is_ascii_digit()), "{code}");

    let request = phone.next("approval_request").await;
    assert_eq!(request["id"].as_str(), Some(id.as_str()));
    assert!(request["choices"].as_array().unwrap().iter().any(|c| c == code.as_str()), "{request}");
    assert!(request.get("code").is_none(), "the phone is not told the answer");

    let path = format!("/phone/approvals/{id}/respond");
    let http =
        send(app.client.post(app.url(&path)).bearer_auth(&token).json(&json!({"decision": "approve", "code": code})));
    let mqtt =
        phone.send("approval_response", json!({"id": "r1", "approval_id": id, "decision": "approve", "code": code}));
    let ((status, answer), ()) = tokio::join!(http, mqtt);
    assert!(status == 200 || (status == 409 && answer["error"] == "approval_already_decided"), "{status} {answer}");

    let (status, decided) = app.admin_get(&format!("/phone/approvals/{id}?wait=10s")).await;
    assert_eq!(status, 200);
    assert_eq!((decided["status"].as_str(), decided["decided_by"].as_str()), (Some("approved"), Some("phone-d")));
    let outcome = hook.wait_for(1).await;
    assert_eq!((outcome[0].to.as_str(), outcome[0].body.as_str()), (id.as_str(), "approved"));
    let (status, again) =
        send(app.client.post(app.url(&path)).bearer_auth(&token).json(&json!({"decision": "reject", "code": code})))
            .await;
    assert_eq!((status, again["error"].as_str()), (409, Some("approval_already_decided")));
    let approved = app.audit().iter().filter(|e| e["action"] == "approval.approved").count();
    assert_eq!(approved, 1, "exactly one decision is recorded");
}

#[tokio::test]
async fn pending_approvals_wait_for_the_phone_across_a_restart_and_decided_ones_do_not() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("erin", "phone-e").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();
    let waiting = ask(&app, "erin", 600, None).await;
    let decided = ask(&app, "erin", 600, None).await;
    let path = format!("/phone/approvals/{}/respond", decided["id"].as_str().unwrap());
    let body = json!({"decision": "reject", "code": decided["code"]});
    let (status, answer) = send(app.client.post(app.url(&path)).bearer_auth(&token).json(&body)).await;
    assert_eq!(status, 200, "{answer}");

    let app = app.restart().await;
    let mut phone = Phone::connect(&app, &paired).await;
    phone.online(None).await;
    assert_eq!(
        phone.next("approval_request").await["id"],
        waiting["id"],
        "the pending one is sent when it comes online"
    );
    let live = ask(&app, "erin", 600, None).await;
    assert_eq!(phone.next("approval_request").await["id"], live["id"], "the decided one is not sent again");
}

#[tokio::test]
async fn wrong_codes_are_refused_and_requests_expire_on_time() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("eve", "phone-e").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();
    let answer = |id: &str, decision: &str, code: &str| {
        let path = format!("/phone/approvals/{id}/respond");
        send(app.client.post(app.url(&path)).bearer_auth(&token).json(&json!({"decision": decision, "code": code})))
    };
    let approval = ask(&app, "eve", 300, None).await;
    let (id, code) = (approval["id"].as_str().unwrap(), approval["code"].as_str().unwrap());
    let (status, _) = answer(id, "maybe", code).await;
    assert_eq!(status, 400, "an unknown decision changes nothing");
    let (status, rejected) = answer(id, "reject", "").await;
    assert_eq!((status, rejected["status"].as_str()), (200, Some("rejected")), "rejecting needs no number");
    assert_eq!(rejected["reason"], "declined");

    let short = ask(&app, "eve", 60, None).await;
    let short_id = short["id"].as_str().unwrap();
    let started = std::time::Instant::now();
    // The clock moves past the expiry while the long poll waits (its
    // request goes first): the poll must answer "expired" then, not
    // "pending" at the end of its own 30 s.
    let path = format!("/phone/approvals/{short_id}?wait=30s");
    let poll = app.admin_get(&path);
    let ((_, waited), ()) = tokio::join!(poll, app.shift_clock(61));
    assert_eq!(waited["status"], "expired", "{waited}");
    assert!(started.elapsed() < std::time::Duration::from_secs(25), "the long poll returned at expiry");
    let late_path = format!("/phone/approvals/{short_id}/respond");
    let late = json!({"decision": "approve", "code": short["code"]});
    let (status, late) = send(app.client.post(app.url(&late_path)).bearer_auth(&token).json(&late)).await;
    assert_eq!((status, late["error"].as_str()), (410, Some("approval_expired")));
    let (status, _) = app.admin_get("/phone/approvals/a-missing").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn trying_each_number_in_turn_never_approves() {
    let mut app = spawn_app().await;
    let mut hook = fakes::approval_hook().await;
    let paired = app.pair_full("ivan", "phone-i").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();
    let approval = ask(&app, "ivan", 300, Some(format!("{}/approvals", hook.url()))).await;
    let (id, code) = (approval["id"].as_str().unwrap(), approval["code"].as_str().unwrap());
    let mut choices: Vec<String> =
        approval["choices"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    choices.sort_by_key(|c| c == code); // the right number last
    let path = format!("/phone/approvals/{id}/respond");
    let mut answers = Vec::new();
    for choice in &choices {
        let body = json!({"decision": "approve", "code": choice});
        let (status, answer) = send(app.client.post(app.url(&path)).bearer_auth(&token).json(&body)).await;
        answers.push((status, answer["error"].as_str().unwrap_or_default().to_owned()));
    }
    assert_eq!(
        answers,
        vec![
            (403, "approval_code_mismatch".to_owned()),
            (409, "approval_already_decided".to_owned()),
            (409, "approval_already_decided".to_owned())
        ]
    );
    let (_, decided) = app.admin_get(&format!("/phone/approvals/{id}")).await;
    assert_eq!((decided["status"].as_str(), decided["reason"].as_str()), (Some("rejected"), Some("wrong_number")));
    let audit = app.audit();
    let line = audit.iter().find(|e| e["action"] == "approval.rejected").expect("audited");
    assert_eq!((line["target"].as_str(), line["result"].as_str()), (Some(id), Some("wrong_number")), "{line}");
    let outcome = hook.wait_for(1).await;
    assert_eq!((outcome[0].to.as_str(), outcome[0].body.as_str()), (id, "rejected"));
}

#[tokio::test]
async fn another_users_phone_cannot_answer() {
    let mut app = spawn_app().await;
    app.pair_full("fred", "phone-f").await;
    let other = app.pair_full("gina", "phone-g").await;
    let approval = ask(&app, "fred", 300, None).await;
    let path = format!("/phone/approvals/{}/respond", approval["id"].as_str().unwrap());
    let body = json!({"decision": "approve", "code": approval["code"]});
    let (status, answer) =
        send(app.client.post(app.url(&path)).bearer_auth(other["jwt_token"].as_str().unwrap()).json(&body)).await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("approval_not_found")));
}

/// Reads a server-sent event stream until `n` events have arrived or it
/// ends; each as (event name, data as JSON).
pub(crate) async fn sse_events(response: &mut reqwest::Response, n: usize) -> Vec<(String, Value)> {
    let mut text = String::new();
    let mut events = Vec::new();
    let read = async {
        while events.len() < n {
            let Some(chunk) = response.chunk().await.expect("stream") else { break };
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(str::to_owned);
                if let (Some(event), Some(data)) = (field("event:"), field("data:")) {
                    events.push((event, serde_json::from_str(&data).expect("JSON data")));
                }
            }
        }
    };
    tokio::time::timeout(crate::phone::WAIT, read).await.expect("events arrived");
    events
}

#[tokio::test]
async fn the_live_event_stream_carries_the_backlog_then_live_messages_until_revoked() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("hank", "phone-h").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();
    let (_, missed) = notify(&app, json!({"user_id": "hank", "title": "while away"})).await;
    let (status, _) = send(app.client.get(app.url("/phone/events"))).await;
    assert_eq!(status, 401, "the stream needs the device token");
    let mut stream = app.client.get(app.url("/phone/events")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let backlog = sse_events(&mut stream, 1).await;
    assert_eq!((backlog[0].0.as_str(), &backlog[0].1["id"]), ("notification", &missed["id"]));
    let (_, live) = notify(&app, json!({"user_id": "hank", "title": "live one"})).await;
    let got = sse_events(&mut stream, 1).await;
    assert_eq!((got[0].0.as_str(), &got[0].1["id"]), ("notification", &live["id"]));
    let (status, _) = send(app.admin(reqwest::Method::DELETE, "/phone/devices/phone-h")).await;
    assert_eq!(status, 200);
    let last = sse_events(&mut stream, 2).await;
    assert_eq!(last.len(), 1, "the stream ends after the control message: {last:?}");
    assert_eq!((last[0].0.as_str(), last[0].1["action"].as_str()), ("control", Some("revoked")));
}

#[tokio::test]
async fn presence_updates_last_seen_and_a_token_near_expiry_gets_a_refresh_hint() {
    let mut app = crate::helpers::spawn_with(crate::helpers::Options::default().arg("--jwt-ttl").arg("2days")).await;
    let paired = app.pair_full("ivy", "phone-i").await;
    let (_, missed) = notify(&app, json!({"user_id": "ivy", "title": "missed"})).await;
    let mut phone = Phone::connect(&app, &paired).await;
    phone.online(None).await;
    assert_eq!(phone.next("notification").await["id"], missed["id"], "the replay shows presence was handled");
    let hint = phone.next("control").await;
    assert_eq!(hint["action"], "token_refresh", "{hint}");
    let (_, listed) = app.admin_get("/phone/devices?user_id=ivy").await;
    let device = &listed["devices"][0];
    let time = |field: &str| chrono::DateTime::parse_from_rfc3339(device[field].as_str().unwrap()).unwrap();
    assert!(time("last_seen_at") > time("paired_at"), "presence moved last seen past the pairing: {device}");
}
