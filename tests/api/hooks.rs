//! Webhooks in, over real HTTPS: payloads shaped like GitHub's and GitLab's
//! documented examples (tests/fixtures/hooks), signed here with HMAC-SHA256
//! as the forges sign them; the mapped failure reaches the user's phone
//! over MQTT, and bad signatures, replays, unmapped people, oversized
//! bodies and events nobody asked for are refused and change nothing.

use crate::helpers::{send, spawn_app, spawn_process, TestApp};
use crate::phone::Phone;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;

const GITHUB_SECRET: &str = "github-hook-secret-for-tests";
const GITLAB_TOKEN: &str = "gitlab-hook-token-for-tests";
const JENKINS_SECRET: &str = "jenkins-hook-secret-for-tests";

fn fixture(path: &str) -> Vec<u8> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hooks").join(path);
    std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).expect("fixture JSON")
}

/// `sha256=<hex>` of the HMAC-SHA256 of `parts` under `secret`.
fn sign(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    parts.iter().for_each(|p| mac.update(p));
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Writes `hooks.toml` (mode 0600) into the running appliance's data
/// directory; it is read on the next delivery.
fn write_hooks(app: &TestApp, text: &str) {
    let path = app.data_dir().join("hooks.toml");
    std::fs::write(&path, text).expect("hooks.toml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

fn hooks_toml() -> String {
    format!(
        r#"
[users]
octocat = "alice"
root = "alice"
"user@example.com" = "alice"
"alice@example.com" = "alice"

[github]
secret = "{GITHUB_SECRET}"
repositories = ["octo-org/octo-repo"]
branches = ["main", "release/*"]

[gitlab]
token = "{GITLAB_TOKEN}"
projects = ["gitlab-org/*"]
notify = {{ success = 2, failure = 5 }}

[generic.jenkins]
secret = "{JENKINS_SECRET}"
users = ["alice"]
"#
    )
}

async fn github(app: &TestApp, event: &str, delivery: &str, body: &[u8], signature: Option<String>) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/hooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("user-agent", "GitHub-Hookshot/2bf4d8c")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-hub-signature-256", signature);
    }
    send(request).await
}

async fn github_signed(app: &TestApp, event: &str, delivery: &str, body: &[u8]) -> (u16, Value) {
    github(app, event, delivery, body, Some(sign(GITHUB_SECRET, &[body]))).await
}

async fn gitlab(app: &TestApp, event: &str, key: &str, body: &[u8], token: &str) -> (u16, Value) {
    let request = app
        .client
        .post(app.url("/hooks/gitlab"))
        .header("content-type", "application/json")
        .header("x-gitlab-event", event)
        .header("x-gitlab-token", token)
        .header("idempotency-key", key)
        .body(body.to_vec());
    send(request).await
}

/// Notifications stored, by the admin's activity view.
async fn notification_count(app: &TestApp) -> usize {
    let (_, activity) = app.admin_get("/admin/activity").await;
    activity["notifications"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_signed_github_failure_reaches_the_users_phone_over_mqtt() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("alice", "alice-phone").await;
    let mut phone = Phone::connect(&app, &paired).await;
    let body = fixture("github/workflow_run.completed.json");
    let (status, answer) = github_signed(&app, "workflow_run", "d-before", &body).await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("hook_not_configured")), "no hooks.toml yet");

    write_hooks(&app, &hooks_toml());
    let (status, answer) = github_signed(&app, "workflow_run", "72d3162e-cc78-11e3-81ab-4c9367dc0958", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["notified"]["user_id"], "alice");
    let got = phone.next("notification").await;
    assert_eq!(got["id"], answer["notified"]["id"]);
    assert_eq!(got["title"], "octo-org/octo-repo: CI failed on main");
    assert_eq!((got["priority"].as_u64(), got["kind"].as_str()), (Some(4), Some("build_failure")));
    assert_eq!(got["link"], "https://github.com/octo-org/octo-repo/actions/runs/289782451");
    assert_eq!(got["body"], "Fix the pairing timeout (3484a3f)");
    let audit = app.audit();
    assert!(audit.iter().any(|e| e["actor"] == "hook:github" && e["action"] == "hook.notify"), "{audit:?}");
}

#[tokio::test]
async fn bad_github_deliveries_are_refused_and_change_nothing() {
    let mut app = spawn_app().await;
    app.pair("alice", "alice-phone").await;
    write_hooks(&app, &hooks_toml());
    let body = fixture("github/workflow_run.completed.json");
    let (status, _) = github_signed(&app, "workflow_run", "first", &body).await;
    assert_eq!(status, 200);
    let before = notification_count(&app).await;

    let forged = sign("not-the-secret-at-all", &[&body]);
    let (status, answer) = github(&app, "workflow_run", "second", &body, Some(forged)).await;
    assert_eq!((status, answer["error"].as_str()), (401, Some("hook_signature_invalid")));
    let mut tampered = fixture_json("github/workflow_run.completed.json");
    tampered["workflow_run"]["conclusion"] = json!("success");
    let tampered = serde_json::to_vec(&tampered).unwrap();
    let (status, _) = github(&app, "workflow_run", "third", &tampered, Some(sign(GITHUB_SECRET, &[&body]))).await;
    assert_eq!(status, 401, "a signature over another body");
    let (status, answer) = github(&app, "workflow_run", "fourth", &body, None).await;
    assert_eq!((status, answer["error"].as_str()), (401, Some("hook_signature_missing")));
    assert!(app.audit().iter().any(|e| e["action"] == "admin.auth" && e["target"] == "github hook"));

    let (status, answer) = github_signed(&app, "workflow_run", "first", &body).await;
    assert_eq!((status, answer["error"].as_str()), (409, Some("hook_replayed")), "{answer}");

    let mut stranger = fixture_json("github/workflow_run.completed.json");
    for path in [["workflow_run", "actor"], ["workflow_run", "triggering_actor"]] {
        stranger[path[0]][path[1]]["login"] = json!("stranger");
    }
    stranger["workflow_run"]["head_commit"]["author"]["email"] = json!("stranger@example.org");
    stranger["sender"]["login"] = json!("stranger");
    let stranger = serde_json::to_vec(&stranger).unwrap();
    let (status, answer) = github_signed(&app, "workflow_run", "fifth", &stranger).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("hook_user_unmapped")), "{answer}");

    let huge = vec![b' '; 1024 * 1024 + 1];
    let (status, answer) = github_signed(&app, "workflow_run", "sixth", &huge).await;
    assert_eq!((status, answer["error"].as_str()), (413, Some("payload_too_large")));
    let (status, answer) = github_signed(&app, "star", "seventh", br#"{"action":"created"}"#).await;
    assert_eq!(status, 202, "an event nobody maps is acknowledged: {answer}");
    assert!(answer["ignored"]["reason"].as_str().unwrap().contains("star"));

    assert_eq!(notification_count(&app).await, before, "nothing refused was stored");
    let (status, _) = github_signed(&app, "workflow_run", "fifth", &body).await;
    assert_eq!(status, 200, "a refused delivery id is not used up");
}

#[tokio::test]
async fn github_checks_and_deployments_map_by_the_hooks_rules() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("alice", "alice-phone").await;
    let mut phone = Phone::connect(&app, &paired).await;
    write_hooks(&app, &hooks_toml());
    for (event, file, title, priority) in [
        ("check_suite", "check_suite.completed", "octo-org/octo-repo: checks passed on main", 2),
        ("deployment", "deployment.created", "octo-org/octo-repo: deploying main to production", 3),
        (
            "deployment_status",
            "deployment_status.created",
            "octo-org/octo-repo: deploy of main to production failed",
            4,
        ),
    ] {
        let (status, answer) = github_signed(&app, event, file, &fixture(&format!("github/{file}.json"))).await;
        assert_eq!(status, 200, "{event}: {answer}");
        let got = phone.next("notification").await;
        assert_eq!((got["title"].as_str(), got["priority"].as_u64()), (Some(title), Some(priority)), "{event}");
    }
    let mut elsewhere = fixture_json("github/workflow_run.completed.json");
    elsewhere["workflow_run"]["head_branch"] = json!("feature/x");
    let (status, answer) =
        github_signed(&app, "workflow_run", "branch", &serde_json::to_vec(&elsewhere).unwrap()).await;
    assert_eq!(status, 202, "a branch the hook does not cover: {answer}");
    let mut cancelled = fixture_json("github/workflow_run.completed.json");
    cancelled["workflow_run"]["conclusion"] = json!("cancelled");
    let (status, answer) = github_signed(&app, "workflow_run", "off", &serde_json::to_vec(&cancelled).unwrap()).await;
    assert_eq!(status, 202, "cancelled runs are off by default: {answer}");
}

#[tokio::test]
async fn gitlab_checks_its_token_and_maps_pipelines_jobs_and_deployments() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("alice", "alice-phone").await;
    let mut phone = Phone::connect(&app, &paired).await;
    write_hooks(&app, &hooks_toml());
    let pipeline = fixture("gitlab/pipeline.json");
    let (status, answer) = gitlab(&app, "Pipeline Hook", "k1", &pipeline, "wrong-token-of-some-size").await;
    assert_eq!((status, answer["error"].as_str()), (401, Some("hook_signature_invalid")));
    for (event, file, key, title, priority) in [
        ("Pipeline Hook", "pipeline", "k1", "gitlab-org/gitlab-test: pipeline failed on main", 5),
        ("Job Hook", "job", "k2", "gitlab-org/gitlab-test: job test passed on main", 2),
        ("Deployment Hook", "deployment", "k3", "gitlab-org/gitlab-test: deploy of main to staging passed", 2),
    ] {
        let (status, answer) = gitlab(&app, event, key, &fixture(&format!("gitlab/{file}.json")), GITLAB_TOKEN).await;
        assert_eq!(status, 200, "{event}: {answer}");
        let got = phone.next("notification").await;
        assert_eq!((got["title"].as_str(), got["priority"].as_u64()), (Some(title), Some(priority)), "{event}");
    }
    let (status, answer) = gitlab(&app, "Pipeline Hook", "k1", &pipeline, GITLAB_TOKEN).await;
    assert_eq!((status, answer["error"].as_str()), (409, Some("hook_replayed")));
    let (status, _) = gitlab(&app, "Push Hook", "k4", br#"{"object_kind":"push"}"#, GITLAB_TOKEN).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn generic_hooks_sign_a_timestamp_and_name_allowed_users() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("alice", "alice-phone").await;
    let mut phone = Phone::connect(&app, &paired).await;
    app.pair("bob", "bob-phone").await;
    write_hooks(&app, &hooks_toml());
    let post = |name: &str, ts: i64, body: Value| {
        let body = serde_json::to_vec(&body).unwrap();
        let ts = ts.to_string();
        let signature = sign(JENKINS_SECRET, &[ts.as_bytes(), b".", &body]);
        let request = app
            .client
            .post(app.url(&format!("/hooks/generic/{name}")))
            .header("x-topdog-timestamp", ts)
            .header("x-topdog-signature-256", signature)
            .body(body);
        send(request)
    };
    let now = chrono::Utc::now().timestamp();
    let build = json!({"user": "alice", "title": "Jenkins: api #88 failed", "priority": 4, "kind": "build_failure",
                       "link": "https://jenkins.example.com/job/api/88/"});
    let (status, answer) = post("jenkins", now, build.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(phone.next("notification").await["title"], "Jenkins: api #88 failed");
    let (status, answer) = post("jenkins", now, build.clone()).await;
    assert_eq!((status, answer["error"].as_str()), (409, Some("hook_replayed")));
    let (status, answer) = post("jenkins", now - 600, build.clone()).await;
    assert_eq!((status, answer["error"].as_str()), (401, Some("hook_timestamp_stale")));
    let (status, answer) = post("jenkins", now + 1, json!({"user": "bob", "title": "x"})).await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("hook_user_not_allowed")));
    let (status, answer) = post("buildkite", now, build).await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("hook_not_configured")));
}

#[tokio::test]
async fn a_changed_hooks_file_is_used_at_once_and_a_broken_one_keeps_the_last() {
    let mut app = spawn_process().await;
    app.pair("alice", "alice-phone").await;
    write_hooks(&app, &hooks_toml());
    let body = fixture("github/workflow_run.completed.json");
    assert_eq!(github_signed(&app, "workflow_run", "a", &body).await.0, 200);
    write_hooks(&app, &hooks_toml().replace(GITHUB_SECRET, "a-rotated-github-secret-value"));
    assert_eq!(github_signed(&app, "workflow_run", "b", &body).await.0, 401, "the old secret no longer works");
    let rotated = sign("a-rotated-github-secret-value", &[&body]);
    assert_eq!(github(&app, "workflow_run", "c", &body, Some(rotated.clone())).await.0, 200);
    write_hooks(&app, "this is [[ not toml");
    assert_eq!(github(&app, "workflow_run", "d", &body, Some(rotated)).await.0, 200, "the last good file stays");
    assert!(app.log().contains("hooks.toml not taken"));
    let (_, backup) = app.admin_get("/admin/backup").await;
    assert!(backup["files"]["hooks.toml"].is_string(), "hooks.toml is in backups");
}
