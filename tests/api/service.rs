//! Running as a service: systemd readiness (sd_notify once the listeners
//! are up), a clean exit on SIGTERM, and backup and restore.

use crate::helpers::{binary, send, spawn_app, spawn_with, Options};
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
    let mut app = spawn_app().await;
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
