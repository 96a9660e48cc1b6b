//! Durability: a `kill -9` in the middle of a burst of invites loses none of
//! the invites that were acknowledged with a 2xx; ten `kill -9`s at varying
//! moments of a mixed load (invites, accepts, revokes, notifications,
//! approvals) lose nothing acknowledged, never leave an accepted invite
//! pending, keep seats and devices in agreement and the audit chain whole.

use crate::helpers::spawn_process;
use serde_json::json;
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn acknowledged_invites_survive_kill_9() {
    let mut app = spawn_process().await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let (enough_tx, mut enough_rx) = tokio::sync::watch::channel(0usize);
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let (client, url, token, acked, enough_tx) = (
            app.client.clone(),
            app.url("/phone/pairing/send-sms"),
            app.admin_token.clone(),
            acked.clone(),
            enough_tx.clone(),
        );
        writers.spawn(async move {
            for i in 0..500 {
                let body =
                    json!({"phone_number": "+14155552671", "user_id": format!("u{w}-{i}"), "user_name": "Burst"});
                let Ok(response) = client.post(&url).header("x-admin-token", &token).json(&body).send().await else {
                    return;
                };
                if !response.status().is_success() {
                    return;
                }
                let Ok(answer) = response.json::<serde_json::Value>().await else { return };
                let mut list = acked.lock().unwrap();
                list.push(answer["invite_code"].as_str().unwrap().to_owned());
                enough_tx.send_replace(list.len());
            }
        });
    }
    enough_rx.wait_for(|n| *n >= 60).await.unwrap();
    app.kill9();
    while writers.join_next().await.is_some() {}
    let codes = acked.lock().unwrap().clone();
    assert!(codes.len() >= 60);

    let app = app.start_again(|o| o).await;
    for code in &codes {
        let (status, view) = app.get(&format!("/phone/pairing/invite/{code}")).await;
        assert_eq!((status, view["status"].as_str()), (200, Some("pending")), "acknowledged invite {code} was lost");
    }
}

/// What the load saw acknowledged with a 2xx.
#[derive(Default)]
struct Acked {
    invites: Vec<String>,
    unaccepted: Vec<String>,
    accepted: Vec<(String, String)>,
    active: Vec<String>,
    revoked: Vec<String>,
    /// Revokes cut off by the kill: either outcome is right.
    uncertain: Vec<String>,
    notifications: Vec<String>,
    approvals: Vec<String>,
    count: usize,
}

/// One worker's mixed load until aborted: invites, accepts, revokes,
/// notifications and approvals, recording each acknowledged change.
async fn mixed_load(
    app: (reqwest::Client, String, String),
    w: usize,
    cycle: usize,
    acked: Arc<Mutex<Acked>>,
    tick: tokio::sync::watch::Sender<usize>,
) {
    let (client, base, token) = app;
    let admin =
        |m: reqwest::Method, path: &str| client.request(m, format!("{base}{path}")).header("x-admin-token", &token);
    for i in 0.. {
        let op = (i + w) % 5;
        let ok = match op {
            0 => {
                let body =
                    json!({"phone_number": "+14155552671", "user_id": format!("u{}", i % 7 + 1), "user_name": "U"});
                let r = admin(reqwest::Method::POST, "/phone/pairing/send-sms").json(&body).send().await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        let code = v["invite_code"].as_str().unwrap_or_default().to_owned();
                        let mut a = acked.lock().unwrap();
                        a.invites.push(code.clone());
                        a.unaccepted.push(code);
                        true
                    }
                    _ => false,
                }
            }
            1 => {
                let Some(code) = acked.lock().unwrap().unaccepted.pop() else { continue };
                let device = format!("d{cycle}-{w}-{i}");
                let r = client
                    .post(format!("{base}/phone/pairing/accept-invite"))
                    .json(&crate::helpers::accept_body(&code, &device, None))
                    .send()
                    .await;
                let ok = matches!(&r, Ok(r) if r.status() == 200);
                let mut a = acked.lock().unwrap();
                if ok {
                    a.accepted.push((code, device.clone()));
                    a.active.push(device);
                }
                ok
            }
            2 => {
                let device = {
                    let mut a = acked.lock().unwrap();
                    let Some(device) = a.active.pop() else { continue };
                    a.uncertain.push(device.clone()); // until the answer says otherwise
                    device
                };
                let r = admin(reqwest::Method::DELETE, &format!("/phone/devices/{device}")).send().await;
                let ok = matches!(&r, Ok(r) if r.status() == 200);
                if ok {
                    let mut a = acked.lock().unwrap();
                    a.uncertain.retain(|d| d != &device);
                    a.revoked.push(device);
                }
                ok
            }
            3 => {
                let r = admin(reqwest::Method::POST, "/phone/notify")
                    .json(&json!({"user_id": "u0", "title": format!("c{cycle} {i}")}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        acked.lock().unwrap().notifications.push(v["id"].as_str().unwrap_or_default().to_owned());
                        true
                    }
                    _ => false,
                }
            }
            _ => {
                let r = admin(reqwest::Method::POST, "/phone/approvals")
                    .json(&json!({"user_id": "u0", "title": "ok?"}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        acked.lock().unwrap().approvals.push(v["id"].as_str().unwrap_or_default().to_owned());
                        true
                    }
                    _ => false,
                }
            }
        };
        if ok {
            let n = {
                let mut a = acked.lock().unwrap();
                a.count += 1;
                a.count
            };
            tick.send_replace(n);
        }
    }
}

/// Everything acknowledged is there, and the records agree with each other.
async fn check_after_restart(app: &crate::helpers::TestApp, watcher: &str, acked: &Acked) -> std::process::Output {
    let (_, devices) = app.admin_get("/phone/devices").await;
    let state_of = |id: &str| {
        devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device_id"] == id)
            .map(|d| d["status"].as_str().unwrap().to_owned())
    };
    for code in &acked.invites {
        let (status, invite) = app.get(&format!("/phone/pairing/invite/{code}")).await;
        assert_eq!(status, 200, "acknowledged invite lost: {invite}");
    }
    for (code, device) in &acked.accepted {
        let (_, invite) = app.get(&format!("/phone/pairing/invite/{code}")).await;
        assert_eq!(invite["status"], "accepted", "an accepted invite must not be pending");
        let state = state_of(device);
        if acked.uncertain.contains(device) {
            assert!(state.is_some(), "device {device} lost");
            continue;
        }
        let expected = if acked.revoked.contains(device) { "revoked" } else { "active" };
        assert_eq!(state.as_deref(), Some(expected), "device {device}");
    }
    let users: std::collections::BTreeSet<&str> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] != "revoked")
        .map(|d| d["user_id"].as_str().unwrap())
        .collect();
    let (_, license) = app.admin_get("/admin/license").await;
    assert_eq!(license["seats_used"].as_u64(), Some(users.len() as u64), "seats agree with the devices");
    let (_, listed) = app.device_get("/phone/notifications?since=all", watcher).await;
    let stored: std::collections::BTreeSet<&str> =
        listed["notifications"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    for id in &acked.notifications {
        assert!(stored.contains(id.as_str()), "acknowledged notification {id} lost");
    }
    for id in &acked.approvals {
        assert_eq!(app.admin_get(&format!("/phone/approvals/{id}")).await.0, 200, "acknowledged approval {id} lost");
    }
    let verify = std::process::Command::new(crate::helpers::binary())
        .args(["audit", "verify", "--data-dir"])
        .arg(app.data_dir())
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    verify
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_kill_9_cycles_under_mixed_load_lose_nothing_acknowledged() {
    let mut app = spawn_process().await;
    let watcher = app.pair("u0", "watcher").await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    for cycle in 0..10 {
        let (tick, mut ticks) = tokio::sync::watch::channel(0usize);
        let start = acked.lock().unwrap().count;
        let kill_after = start + 15 + (cycle * 13) % 40;
        let mut load = tokio::task::JoinSet::new();
        for w in 0..4 {
            let target = (app.client.clone(), app.base.clone(), app.admin_token.clone());
            load.spawn(mixed_load(target, w, cycle, acked.clone(), tick.clone()));
        }
        tokio::time::timeout(std::time::Duration::from_secs(60), ticks.wait_for(|n| *n >= kill_after))
            .await
            .expect("the load made progress")
            .unwrap();
        app.kill9();
        load.abort_all();
        while load.join_next().await.is_some() {}
        if cycle == 5 {
            // As if the kill had come in the middle of an audit write.
            let mut audit = std::fs::OpenOptions::new().append(true).open(app.data_dir().join("audit.jsonl")).unwrap();
            std::io::Write::write_all(&mut audit, br#"{"seq":99999,"time":"2026-"#).unwrap();
        }
        app = app.start_again(|o| o).await;
        let snapshot = std::mem::take(&mut *acked.lock().unwrap());
        let verified = check_after_restart(&app, &watcher, &snapshot).await;
        if cycle >= 5 {
            let report = String::from_utf8_lossy(&verified.stdout);
            assert!(report.contains("was torn by a crash; kept"), "the torn line is reported: {report}");
        }
        *acked.lock().unwrap() = snapshot;
    }
    let done = acked.lock().unwrap();
    assert!(done.accepted.len() >= 10 && done.notifications.len() >= 10, "the load covered every kind of change");
}
