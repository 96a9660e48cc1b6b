//! The original design's hardening list: rate limits, restarts keep
//! everything, revocation is durable, the audit trail is ordered and
//! tamper-evident, expired invites cannot be used.

use crate::helpers::{send, spawn_app, spawn_with, Options};
use reqwest::Method;

#[tokio::test]
async fn over_the_limit_is_429_with_retry_after() {
    let app = spawn_with(Options::default().arg("--rate-accepts-per-minute").arg("3")).await;
    let (_, invite) = app.send_sms("+14155552671", "alice").await;
    let path = format!("/phone/pairing/invite/{}", invite["invite_code"].as_str().unwrap());
    for _ in 0..3 {
        assert_eq!(app.get(&path).await.0, 200);
    }
    let response = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    let other_agent = app.client.get(app.url(&path)).header("user-agent", "another-phone").send().await.unwrap();
    assert_eq!(other_agent.status(), 429, "budgets are per address: a new user agent does not reset them");
    let (status, _) = app.send_sms("+14155552671", "alice").await;
    assert_eq!(status, 200, "invite creation has its own budget");
}

#[tokio::test]
async fn invite_creation_has_its_own_limit() {
    let app = spawn_with(Options::default().arg("--rate-invites-per-minute").arg("2")).await;
    assert_eq!(app.send_sms("+14155552671", "a").await.0, 200);
    assert_eq!(app.send_sms("+14155552671", "a").await.0, 200);
    assert_eq!(app.send_sms("+14155552671", "a").await.0, 429);
}

#[tokio::test]
async fn sessions_devices_and_revocations_survive_a_restart() {
    let mut app = spawn_app().await;
    let kept = app.pair("bob", "kept").await;
    let revoked = app.pair("bob", "gone").await;
    let (_, pending) = app.send_sms("+14155552671", "bob").await;
    let pending_code = pending["invite_code"].as_str().unwrap().to_owned();
    assert_eq!(send(app.admin(Method::DELETE, "/phone/devices/gone")).await.0, 200);
    let ca_before = std::fs::read(app.ca_file()).unwrap();

    let app = app.restart().await;
    assert!(!app.output().iter().any(|l| l.contains("Admin token (shown only")), "the token is not regenerated");
    assert_eq!(std::fs::read(app.ca_file()).unwrap(), ca_before, "the CA is reused");
    assert_eq!(app.device_get("/phone/me", &kept).await.0, 200);
    let (status, body) = app.device_get("/phone/me", &revoked).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("device_revoked")));
    let (_, view) = app.get(&format!("/phone/pairing/invite/{pending_code}")).await;
    assert_eq!(view["status"], "pending");
    let (_, list) = app.admin_get("/phone/devices").await;
    assert_eq!(list["count"], 2);
    assert_eq!(app.accept(&pending_code, "later").await.0, 200);
}

#[tokio::test]
async fn audit_records_accept_then_revoke_and_detects_tampering() {
    let mut app = spawn_with(Options::default().unlicensed()).await;
    app.pair("carol", "phone-c").await;
    send(app.admin(Method::DELETE, "/phone/devices/phone-c")).await;
    let entries = app.audit();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["invite.create", "invite.accept", "device.revoke"]);
    assert_eq!(entries[1]["target"].as_str().unwrap().split(' ').next(), Some("phone-c"));
    assert_eq!(entries[2]["actor"], "admin");
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains("4155552671"), "numbers are masked in the audit log");

    let ok = app.audit_verify();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("3 entries"));

    app.tamper_with_audit("invite.create", "invite.cancel");
    let broken = app.audit_verify();
    assert!(!broken.status.success());
    assert!(String::from_utf8_lossy(&broken.stderr).contains("line 2"), "{}", String::from_utf8_lossy(&broken.stderr));
}

#[tokio::test]
async fn an_expired_invite_reads_expired_and_cannot_be_accepted() {
    let app = spawn_with(Options::default().arg("--invite-expiry").arg("15m")).await;
    let (_, invite) = app.send_sms("+14155552671", "dan").await;
    let code = invite["invite_code"].as_str().unwrap();
    let (_, view) = app.get(&format!("/phone/pairing/invite/{code}")).await;
    assert_eq!(view["status"], "pending", "{view}");
    app.shift_clock(15 * 60 + 1).await;
    let (_, view) = app.get(&format!("/phone/pairing/invite/{code}")).await;
    assert_eq!((view["status"].as_str(), view["is_expired"].as_bool()), (Some("expired"), Some(true)));
    let (status, refused) = app.accept(code, "late-phone").await;
    assert_eq!((status, refused["error"].as_str()), (410, Some("invite_expired")));
    let (_, list) = app.admin_get("/phone/devices").await;
    assert_eq!(list["count"], 0);
}

#[tokio::test]
async fn the_sweeper_marks_expired_invites_in_the_store() {
    let mut app =
        spawn_with(Options::default().arg("--invite-expiry").arg("15m").arg("--sweep-interval").arg("100ms")).await;
    app.send_sms("+14155552671", "erin").await;
    app.shift_clock(15 * 60 + 1).await;
    let metric = r#"topdog_invites_expired_total{kind="sms"} 1"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if text.contains(metric) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "sweeper never ran: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = &mut app;
}
