//! The admin subcommands against a running appliance: over the local admin
//! socket (no token) and over HTTPS with the admin token.

use crate::helpers::{binary, code_in, spawn_app};
use std::process::{Command, Output};

pub(crate) fn topdog(args: &[&str]) -> Output {
    Command::new(binary()).args(args).env_remove("TOPDOG_ADMIN_TOKEN").output().expect("run topdog")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn admin_commands_over_the_local_socket() {
    let mut app = spawn_app().await;
    let dir = app.data_dir();
    let dir = dir.to_str().unwrap();
    let sent = topdog(&["invite", "send", "+14155552671", "--user", "alice", "--name", "Alice", "--data-dir", dir]);
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&sent)).unwrap();
    let code = answer["invite_code"].as_str().unwrap().to_owned();
    assert_eq!(code_in(&app.console_sms(1).await), code);

    let status = topdog(&["invite", "status", &code, "--data-dir", dir]);
    let shown = format!("{} | {}", stdout(&status), String::from_utf8_lossy(&status.stderr));
    assert!(stdout(&status).contains("\"pending\""), "{shown}");
    assert_eq!(app.accept(&code, "cli-phone").await.0, 200);
    let list = topdog(&["devices", "list", "--data-dir", dir]);
    assert!(stdout(&list).lines().any(|l| l.starts_with("cli-phone") && l.contains("active")), "{}", stdout(&list));
    assert!(topdog(&["devices", "suspend", "cli-phone", "--data-dir", dir]).status.success());
    assert!(stdout(&topdog(&["devices", "list", "--data-dir", dir])).contains("suspended"));
    assert!(topdog(&["devices", "reactivate", "cli-phone", "--data-dir", dir]).status.success());
    assert!(topdog(&["devices", "revoke", "cli-phone", "--data-dir", dir]).status.success());
    let again = topdog(&["devices", "suspend", "cli-phone", "--data-dir", dir]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("device_revoked"));

    let qr = topdog(&["invite", "qr", "--user", "bob", "--data-dir", dir]);
    assert!(stdout(&qr).contains('█') && stdout(&qr).contains("/pair?code="), "{}", stdout(&qr));
    let status = topdog(&["status", "--data-dir", dir]);
    assert!(stdout(&status).contains("\"revoked\": 1"), "{}", stdout(&status));
    assert!(app.audit().iter().any(|e| e["actor"] == "admin-socket"));
}

#[tokio::test]
async fn admin_commands_over_https_need_the_token() {
    let app = spawn_app().await;
    let ca = app.ca_file();
    let (url, ca) = (app.base.clone(), ca.to_str().unwrap().to_owned());
    let ok = topdog(&["status", "--url", &url, "--ca-cert", &ca, "--admin-token", &app.admin_token]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let bad = topdog(&["status", "--url", &url, "--ca-cert", &ca, "--admin-token", "tdadm_wrong"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("admin_token_invalid"));
    let no_server = topdog(&["status", "--data-dir", "/nonexistent-topdog"]);
    assert!(!no_server.status.success());
    assert!(String::from_utf8_lossy(&no_server.stderr).contains("admin socket"));
}
