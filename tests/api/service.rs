//! Running as a service: systemd readiness (sd_notify once the listeners
//! are up), a clean exit on SIGTERM (also under load, with a phone that
//! misses nothing across the restart), and backup and restore.

use crate::helpers::{binary, send, spawn_app, spawn_process, spawn_with, Options};
use reqwest::Method;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::process::Command;

#[tokio::test]
async fn tells_systemd_it_is_ready_once_it_answers() {
    let scratch = tempfile::tempdir().unwrap();
    let socket_path = scratch.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    let app = spawn_with(Options::default().env("NOTIFY_SOCKET", socket_path.to_str().unwrap())).await;
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("READY=1 from the appliance");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    assert_eq!(app.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn sigterm_exits_cleanly_and_removes_the_socket() {
    let mut app = spawn_process().await;
    let status = app.stop();
    assert!(status.success(), "{status}");
    assert!(!app.data_dir().join("admin.sock").exists());
    assert!(app.log().contains("stopped cleanly"));
}

#[tokio::test]
async fn backup_of_a_running_appliance_restores_devices_and_revocations() {
    let mut app = spawn_app().await;
    let kept = app.pair("alice", "kept").await;
    let gone = app.pair("bob", "gone").await;
    send(app.admin(Method::DELETE, "/phone/devices/gone")).await;
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("topdog.backup");
    let out = Command::new(binary()).arg("backup").arg(&file).arg("--data-dir").arg(app.data_dir()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    let running =
        Command::new(binary()).arg("restore").arg(&file).arg("--data-dir").arg(app.data_dir()).output().unwrap();
    assert!(!running.status.success(), "restoring over a running appliance is refused");

    let target_dir = tempfile::tempdir().unwrap();
    let target = target_dir.path().join("data");
    let out = Command::new(binary()).arg("restore").arg(&file).arg("--data-dir").arg(&target).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = Command::new(binary()).arg("restore").arg(&file).arg("--data-dir").arg(&target).output().unwrap();
    assert!(!again.status.success(), "a data directory with a database is not overwritten");
    assert!(app.audit().iter().any(|e| e["action"] == "backup.take"));
    let token = app.admin_token.clone();
    drop(app);

    let restored = crate::helpers::start_existing(target_dir, &token).await;
    assert_eq!(restored.device_get("/phone/me", &kept).await.0, 200, "same signing key, same device");
    let (status, body) = restored.device_get("/phone/me", &gone).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("device_revoked")));
    let (_, list) = restored.admin_get("/phone/devices").await;
    assert_eq!(list["count"], 2);
    assert!(restored.audit().iter().any(|e| e["action"] == "device.revoke"), "the audit history came along");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_requests_and_phones_miss_nothing() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("alice", "phone-a").await;
    let mut phone = crate::phone::Phone::connect(&app, &paired).await;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let server_errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u16>::new()));
    let (tick, mut ticks) = tokio::sync::watch::channel(0usize);
    let mut load = tokio::task::JoinSet::new();
    for w in 0..4 {
        let request = app.admin(Method::POST, "/phone/notify");
        let (acked, server_errors, tick) = (acked.clone(), server_errors.clone(), tick.clone());
        load.spawn(async move {
            for i in 0.. {
                let body = serde_json::json!({"user_id": "alice", "title": format!("{w}-{i}")});
                match request.try_clone().unwrap().json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
                        let n = {
                            let mut a = acked.lock().unwrap();
                            a.push(id);
                            a.len()
                        };
                        tick.send_replace(n);
                    }
                    Ok(r) => server_errors.lock().unwrap().push(r.status().as_u16()),
                    Err(_) => return, // the listener has closed
                }
            }
        });
    }
    ticks.wait_for(|n| *n >= 20).await.unwrap();
    let started = std::time::Instant::now();
    let stop = tokio::task::spawn_blocking(move || {
        let status = app.stop();
        (app, status)
    });
    let mut received: Vec<String> = Vec::new();
    let drain = async {
        loop {
            match tokio::time::timeout(std::time::Duration::from_secs(15), phone.events.poll()).await {
                Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)))) => {
                    let m: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                    received.push(m["id"].as_str().unwrap().to_owned());
                }
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    };
    assert!(drain.await, "the phone's connection was closed at shutdown");
    let (app, status) = stop.await.unwrap();
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    assert!(took < std::time::Duration::from_secs(10), "shutdown took {took:?}");
    while load.join_next().await.is_some() {}
    assert!(server_errors.lock().unwrap().iter().all(|s| *s < 500), "{:?}", server_errors.lock().unwrap());

    let app = app.start_again(|o| o).await;
    let mut phone = crate::phone::Phone::connect(&app, &paired).await;
    let last = received.iter().max().cloned();
    phone.online(last.as_deref()).await;
    let acked = acked.lock().unwrap().clone();
    let mut all: std::collections::BTreeSet<String> = received.into_iter().collect();
    // Each acknowledged notification arrives (Phone::next fails the test
    // after its timeout if one never does).
    while acked.iter().any(|id| !all.contains(id)) {
        let got = phone.next("notification").await;
        all.insert(got["id"].as_str().unwrap().to_owned());
    }
}
