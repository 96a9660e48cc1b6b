//! The admin console's sign-in over real HTTPS: the session cookie's flags,
//! CSRF protection on every state change, sign-out, failed sign-ins refused
//! and audited; and the web pages (console, phone app, manifest, service
//! worker) served from the binary with their security policy.

use crate::helpers::{send, spawn_app, TestApp};
use serde_json::{json, Value};

pub(crate) async fn sign_in(app: &TestApp) -> (String, String) {
    let response =
        app.client.post(app.url("/admin/session")).json(&json!({"admin_token": app.admin_token})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(cookie.contains(flag), "{flag} missing from {cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    (pair, body["csrf_token"].as_str().unwrap().to_owned())
}

fn invites_created(app: &TestApp) -> usize {
    app.audit().iter().filter(|e| e["action"] == "invite.create").count()
}

#[tokio::test]
async fn the_console_session_needs_its_csrf_token_for_changes_and_ends_at_sign_out() {
    let app = spawn_app().await;
    let (cookie, csrf) = sign_in(&app).await;
    let (status, list) = send(app.client.get(app.url("/phone/devices")).header("cookie", &cookie)).await;
    assert_eq!(status, 200, "{list}");
    let sms = json!({"phone_number": "+14155552671", "user_id": "alice", "user_name": "Alice"});
    let post = || app.client.post(app.url("/phone/pairing/send-sms")).header("cookie", &cookie).json(&sms);
    let (status, refused) = send(post()).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("csrf_token_invalid")));
    let (status, _) = send(post().header("x-csrf-token", "forged")).await;
    assert_eq!(status, 403);
    assert_eq!(invites_created(&app), 0, "a refused request changes nothing");
    let (status, sent) = send(post().header("x-csrf-token", &csrf)).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(invites_created(&app), 1);
    let (status, again) = send(app.client.get(app.url("/admin/session")).header("cookie", &cookie)).await;
    assert_eq!(
        (status, again["csrf_token"].as_str()),
        (200, Some(csrf.as_str())),
        "a reloaded page gets its token back"
    );

    let (status, _) = send(app.client.delete(app.url("/admin/session")).header("cookie", &cookie)).await;
    assert_eq!(status, 403, "signing out is a change too");
    let out = app.client.delete(app.url("/admin/session")).header("cookie", &cookie).header("x-csrf-token", &csrf);
    let response = out.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let (status, ended) = send(app.client.get(app.url("/phone/devices")).header("cookie", &cookie)).await;
    assert_eq!((status, ended["error"].as_str()), (401, Some("session_ended")));
}

#[tokio::test]
async fn wrong_sign_ins_are_refused_audited_and_limited() {
    let app =
        crate::helpers::spawn_with(crate::helpers::Options::default().arg("--rate-invites-per-minute").arg("3")).await;
    let wrong = || app.client.post(app.url("/admin/session")).json(&json!({"admin_token": "tdadm_guess"}));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, body) = send(wrong()).await;
        assert!(body["error"].is_string() && body["detail"].is_string());
        statuses.push(status);
    }
    assert_eq!(&statuses[..3], &[401, 401, 401]);
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let failures =
        app.audit().iter().filter(|e| e["action"] == "admin.auth" && e["result"] == "admin_token_invalid").count();
    assert_eq!(failures, 3, "each refused guess is audited, limited ones are not");
    let response = wrong().send().await.unwrap();
    assert!(response.headers().get("set-cookie").is_none(), "no cookie for a wrong token");
}

#[tokio::test]
async fn the_pages_come_from_the_binary_with_a_strict_policy() {
    let app = spawn_app().await;
    for (path, needle) in [("/", "Sign in"), ("/app", "Unpair this phone")] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
    let manifest: Value = app.client.get(app.url("/manifest.webmanifest")).send().await.unwrap().json().await.unwrap();
    assert_eq!(manifest["start_url"], "/app");
    for icon in manifest["icons"].as_array().unwrap() {
        let src = icon["src"].as_str().unwrap();
        assert_eq!(app.client.get(app.url(src)).send().await.unwrap().status(), 200, "{src}");
    }
    let worker = app.client.get(app.url("/sw.js")).send().await.unwrap();
    assert!(worker.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
}
