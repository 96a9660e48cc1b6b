//! Scoped API tokens over real HTTPS: each scope opens exactly its routes,
//! a token limited to users reaches only them, revocation and expiry act at
//! once, no token takes a backup, the audit names the token, tokens
//! survive a restart, and each token has its own rate budget.

use crate::helpers::{binary, send, spawn_app, spawn_with, Options, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// One probe: a route, a body, and the scope that should open it (None:
/// no API token, only the admin token or the local socket).
struct Probe {
    method: Method,
    path: String,
    body: Option<Value>,
    scope: Option<&'static str>,
}

fn probe(method: Method, path: &str, body: Option<Value>, scope: Option<&'static str>) -> Probe {
    Probe { method, path: path.to_owned(), body, scope }
}

/// Every route an API token could reach, with what the test appliance
/// needs for each to get past authorisation.
async fn probes(app: &mut TestApp) -> Vec<Probe> {
    app.pair("alice", "alice-phone").await;
    let (_, notified) = app.admin_post("/phone/notify", json!({"user_id": "alice", "title": "t"})).await;
    let approval = json!({"user_id": "alice", "title": "Deploy?", "timeout_s": 300});
    let (_, asked) = app.admin_post("/phone/approvals", approval.clone()).await;
    let (_, invite) = app.send_sms("+14155552671", "carol").await;
    let code = invite["invite_code"].as_str().unwrap().to_owned();
    let sms = json!({"phone_number": "+14155552671", "user_id": "dave", "user_name": "Dave"});
    vec![
        probe(
            Method::POST,
            "/phone/notify",
            Some(json!({"user_id": "alice", "title": "Build #1 failed"})),
            Some("notify"),
        ),
        probe(Method::GET, &format!("/phone/notifications/{}", notified["id"].as_str().unwrap()), None, Some("notify")),
        probe(Method::POST, "/phone/approvals", Some(approval), Some("approvals")),
        probe(Method::GET, &format!("/phone/approvals/{}", asked["id"].as_str().unwrap()), None, Some("approvals")),
        probe(Method::POST, "/phone/pairing/send-sms", Some(sms), Some("pairing")),
        probe(Method::POST, "/phone/pairing/generate-qr", Some(json!({"user_id": "erin"})), Some("pairing")),
        probe(Method::POST, &format!("/phone/pairing/resend-sms/{code}"), None, Some("pairing")),
        probe(Method::DELETE, "/phone/pairing/invite/no-such-invite", None, Some("pairing")),
        probe(Method::GET, "/phone/devices", None, Some("devices:read")),
        probe(Method::POST, "/phone/devices/no-such-phone/suspend", None, Some("devices:write")),
        probe(Method::DELETE, "/phone/devices/no-such-phone", None, Some("devices:write")),
        probe(Method::GET, "/admin/status", None, Some("admin")),
        probe(Method::GET, "/admin/audit", None, Some("admin")),
        probe(Method::GET, "/admin/activity", None, Some("admin")),
        probe(Method::GET, "/admin/license", None, Some("admin")),
        probe(Method::GET, "/admin/tokens", None, Some("admin")),
        probe(Method::GET, "/admin/backup", None, None),
    ]
}

async fn call(app: &TestApp, p: &Probe, token: &str) -> (u16, Value) {
    let mut request = app.with_token(p.method.clone(), &p.path, token);
    if let Some(body) = &p.body {
        request = request.json(body);
    }
    send(request).await
}

#[tokio::test]
async fn each_scope_opens_exactly_its_routes_and_no_token_takes_a_backup() {
    let mut app = spawn_app().await;
    let probes = probes(&mut app).await;
    for scope in ["notify", "approvals", "pairing", "devices:read", "devices:write", "admin"] {
        let token = app.api_token(&scope.replace(':', "-"), &[scope], &[]).await;
        for p in &probes {
            let (status, body) = call(&app, p, &token).await;
            let opens = p.scope == Some(scope) || (scope == "admin" && p.scope.is_some());
            if opens {
                assert!(![401, 403].contains(&status), "{scope} must open {} {}: {status} {body}", p.method, p.path);
            } else {
                assert_eq!(
                    (status, body["error"].as_str()),
                    (403, Some("token_scope")),
                    "{scope}: {} {}",
                    p.method,
                    p.path
                );
            }
        }
    }
    let admin_scoped = app.api_token("ops", &["admin"], &[]).await;
    let (status, _) = send(app.client.get(app.url("/admin/backup")).header("x-admin-token", &admin_scoped)).await;
    assert_eq!(status, 403, "in x-admin-token too, an API token takes no backup");
    let (status, body) = app.admin_get("/admin/backup").await;
    assert_eq!(status, 200, "the admin token still does: {body}");
}

#[tokio::test]
async fn a_token_limited_to_users_notifies_and_asks_only_them() {
    let mut app = spawn_app().await;
    app.pair("alice", "alice-phone").await;
    app.pair("bob", "bob-phone").await;
    let token = app.api_token("alice-ci", &["notify", "approvals"], &["alice"]).await;
    let notify = |body: Value| send(app.with_token(Method::POST, "/phone/notify", &token).json(&body));
    let (status, sent) = notify(json!({"user_id": "alice", "title": "Build #7 passed"})).await;
    assert_eq!(status, 200, "{sent}");
    for other in [json!({"user_id": "bob", "title": "x"}), json!({"device_id": "bob-phone", "title": "x"})] {
        let (status, body) = notify(other.clone()).await;
        assert_eq!((status, body["error"].as_str()), (403, Some("token_scope")), "{other}: {body}");
    }
    let ask = json!({"user_id": "bob", "title": "Deploy?"});
    let (status, body) = send(app.with_token(Method::POST, "/phone/approvals", &token).json(&ask)).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("token_scope")));
    let (_, bobs) = app.admin_post("/phone/approvals", json!({"user_id": "bob", "title": "Deploy?"})).await;
    let path = format!("/phone/approvals/{}", bobs["id"].as_str().unwrap());
    let (status, _) = send(app.with_token(Method::GET, &path, &token)).await;
    assert_eq!(status, 403, "nor read another user's approval");
    let (_, listed) = app.admin_get(&format!("/phone/notifications/{}", sent["id"].as_str().unwrap())).await;
    assert_eq!(listed["user_id"], "alice");
    let wide = json!({"name": "too-wide", "scopes": ["pairing"], "users": ["alice"]});
    let (status, body) = app.admin_post("/admin/tokens", wide).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_token_request")), "{body}");
}

#[tokio::test]
async fn revoked_and_expired_tokens_fail_at_once_and_tokens_survive_a_restart() {
    let app = spawn_app().await;
    let lasting = app.api_token("lasting", &["notify"], &[]).await;
    let (status, made) =
        app.admin_post("/admin/tokens", json!({"name": "hourly", "scopes": ["admin"], "expires_in": "1h"})).await;
    assert_eq!(status, 201, "{made}");
    let hourly = made["token"].as_str().unwrap().to_owned();
    let (status, _) = app.admin_post("/admin/tokens", json!({"name": "hourly", "scopes": ["notify"]})).await;
    assert_eq!(status, 409, "names are unique");

    let app = app.restart().await;
    let status_of = |token: &str| {
        let request = app.with_token(Method::GET, "/admin/status", token);
        async move { send(request).await }
    };
    assert_eq!(status_of(&hourly).await.0, 200, "a token survives a restart");
    let (_, listed) = app.admin_get("/admin/tokens").await;
    let names: Vec<&str> = listed["tokens"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hourly", "lasting"]);
    assert!(listed["tokens"][0]["last_used_at"].is_string(), "{listed}");
    assert!(!listed.to_string().contains(&hourly) && !listed.to_string().contains("hash"), "never the token");

    let notify = json!({"user_id": "nobody", "title": "t"});
    let (status, _) = send(app.with_token(Method::POST, "/phone/notify", &lasting).json(&notify)).await;
    assert_ne!(status, 401);
    let (status, _) = send(app.admin(Method::DELETE, "/admin/tokens/lasting")).await;
    assert_eq!(status, 200);
    let (status, body) = send(app.with_token(Method::POST, "/phone/notify", &lasting).json(&notify)).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("api_token_invalid")), "revoked: refused at once");

    app.shift_clock(3601).await;
    let (status, body) = status_of(&hourly).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("api_token_expired")), "{body}");
    let (status, body) = status_of("tdapi_never-issued").await;
    assert_eq!((status, body["error"].as_str()), (401, Some("api_token_invalid")));
}

#[tokio::test]
async fn the_audit_names_the_token_and_each_token_has_its_own_budget() {
    let mut app = spawn_with(Options::default().arg("--rate-token-requests-per-minute").arg("3")).await;
    app.pair("alice", "alice-phone").await;
    let ci = app.api_token("jenkins", &["approvals", "pairing"], &[]).await;
    let other = app.api_token("other", &["admin"], &[]).await;
    let ask = json!({"user_id": "alice", "title": "Deploy 1.4?"});
    let (status, asked) = send(app.with_token(Method::POST, "/phone/approvals", &ci).json(&ask)).await;
    assert_eq!(status, 201, "{asked}");
    let qr = json!({"user_id": "frank"});
    let (status, _) =
        send(app.client.post(app.url("/phone/pairing/generate-qr")).header("x-admin-token", &ci).json(&qr)).await;
    assert_eq!(status, 200, "x-admin-token carries an API token too");
    let audit = app.audit();
    let by = |action: &str| audit.iter().rev().find(|e| e["action"] == action).map(|e| e["actor"].clone());
    assert_eq!(by("approval.request"), Some(json!("token:jenkins")), "{audit:?}");
    assert_eq!(by("invite.create"), Some(json!("token:jenkins")), "{audit:?}");
    assert_eq!(by("token.create"), Some(json!("admin")));
    assert!(audit.iter().all(|e| !e.to_string().contains(&ci)), "the token itself is never written");

    let path = format!("/phone/approvals/{}", asked["id"].as_str().unwrap());
    let (status, body) = send(app.with_token(Method::GET, &path, &ci)).await;
    assert_eq!(status, 200, "the 3rd request in a minute: {body}");
    let (status, body) = send(app.with_token(Method::GET, &path, &ci)).await;
    assert_eq!((status, body["error"].as_str()), (429, Some("rate_limited")), "the 4th: {body}");
    let (status, _) = send(app.with_token(Method::GET, "/admin/status", &other)).await;
    assert_eq!(status, 200, "another token has its own budget");
    let (status, _) = app.admin_get("/admin/status").await;
    assert_eq!(status, 200, "and the admin token is not limited by either");
}

#[tokio::test]
async fn tokens_are_made_listed_and_revoked_from_the_command_line() {
    let app = spawn_app().await;
    let dir = app.data_dir();
    let dir = dir.to_str().unwrap();
    let topdog = |args: &[&str]| {
        std::process::Command::new(binary()).args(args).args(["--data-dir", dir]).output().expect("topdog")
    };
    let made =
        topdog(&["tokens", "create", "--name", "gitlab", "--scope", "notify", "--user", "alice", "--expires", "90d"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let token = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    assert!(token.starts_with("tdapi_"), "{token}");
    let listed = topdog(&["tokens", "list"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.lines().any(|l| l.starts_with("gitlab") && l.contains("notify") && l.contains("alice")), "{text}");
    assert!(!text.contains(&token));
    let (status, _) = send(app.with_token(Method::GET, "/admin/tokens", &token)).await;
    assert_eq!(status, 403);
    assert!(topdog(&["tokens", "revoke", "gitlab"]).status.success());
    let (status, _) = send(app.with_token(Method::GET, "/admin/tokens", &token)).await;
    assert_eq!(status, 401, "revoked from the command line: refused at once");
    let again = topdog(&["tokens", "revoke", "gitlab"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("token_not_found"));
    assert!(app.audit().iter().any(|e| e["action"] == "token.revoke" && e["actor"] == "admin-socket"));
}
