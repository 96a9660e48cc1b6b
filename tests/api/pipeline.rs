//! `topdog notify` and `topdog approve` as a pipeline runs them: the binary
//! with `TOPDOG_URL`, `TOPDOG_TOKEN` and `TOPDOG_CA_CERT`, against a real
//! appliance and a phone that answers over MQTT or HTTP. `approve`'s exit
//! status gates the deploy: 0 approved, 1 rejected, 2 expired, 3 error.

use crate::helpers::{binary, send, spawn_app, spawn_with, Options, TestApp};
use crate::phone::Phone;
use serde_json::{json, Value};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A pipeline step's command, with the environment a CI runner gives it.
fn step(app: &TestApp, token: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_clear()
        .env("TOPDOG_URL", &app.base)
        .env("TOPDOG_TOKEN", token)
        .env("TOPDOG_CA_CERT", app.ca_file())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A running `topdog approve`, and what it printed first.
struct Waiting {
    child: Child,
    stdout: BufReader<tokio::process::ChildStdout>,
    id: String,
    code: String,
}

async fn approve(app: &TestApp, token: &str, extra: &[&str]) -> Waiting {
    let mut args = vec!["approve", "--user", "alice", "--title", "Deploy 1.4 to production"];
    args.extend_from_slice(extra);
    let mut child = step(app, token, &args).spawn().expect("topdog approve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).await.expect("first line");
    if let Ok(asked) = serde_json::from_str::<Value>(&first) {
        let text = |k: &str| asked[k].as_str().expect("--json: the approval as asked").to_owned();
        return Waiting { child, stdout, id: text("id"), code: text("code") };
    }
    let code = first.strip_prefix("Number to match: ").and_then(|r| r.split_whitespace().next());
    let code = code.unwrap_or_else(|| panic!("the number is printed first: {first:?}")).to_owned();
    let id = first.split("approval ").nth(1).and_then(|r| r.split(';').next()).expect("approval id").to_owned();
    Waiting { child, stdout, id, code }
}

/// Waits for `approve` to end; its exit status, the rest of its stdout,
/// and its stderr.
async fn outcome(mut waiting: Waiting) -> (i32, String, String) {
    let mut rest = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut waiting.stdout, &mut rest).await.expect("stdout");
    let out = waiting.child.wait_with_output().await.expect("wait");
    (out.status.code().unwrap_or(-1), rest, String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn answer_over_http(app: &TestApp, device_token: &str, waiting: &Waiting, decision: &str) {
    let path = format!("/phone/approvals/{}/respond", waiting.id);
    let body = json!({"decision": decision, "code": waiting.code});
    let (status, body) = send(app.client.post(app.url(&path)).bearer_auth(device_token).json(&body)).await;
    assert_eq!(status, 200, "{body}");
}

async fn with_phone(app: &mut TestApp) -> (Value, String) {
    let paired = app.pair_full("alice", "alice-phone").await;
    let device_token = paired["jwt_token"].as_str().unwrap().to_owned();
    let token = app.api_token("pipeline", &["notify", "approvals"], &["alice"]).await;
    (paired, format!("{device_token} {token}"))
}

fn split(tokens: &str) -> (&str, &str) {
    tokens.split_once(' ').expect("two tokens")
}

#[tokio::test]
async fn approve_exits_0_when_the_phone_approves_over_mqtt_or_http() {
    let mut app = spawn_app().await;
    let (paired, tokens) = with_phone(&mut app).await;
    let (device_token, token) = split(&tokens);
    let mut phone = Phone::connect(&app, &paired).await;

    let waiting = approve(&app, token, &[]).await;
    let asked = phone.next("approval_request").await;
    assert_eq!(asked["id"].as_str(), Some(waiting.id.as_str()));
    let response = json!({"id": "r1", "approval_id": waiting.id, "decision": "approve", "code": waiting.code});
    phone.send_acked("approval_response", response).await;
    let (status, printed, _) = outcome(waiting).await;
    assert_eq!(status, 0, "approved over MQTT");
    assert_eq!(printed.trim(), "Approved on alice-phone.");

    let waiting = approve(&app, token, &["--json"]).await;
    answer_over_http(&app, device_token, &waiting, "approve").await;
    let (status, printed, _) = outcome(waiting).await;
    assert_eq!(status, 0, "approved over HTTP");
    let printed: Value = serde_json::from_str(&printed).expect("--json prints the outcome");
    assert_eq!((printed["status"].as_str(), printed["decided_by"].as_str()), (Some("approved"), Some("alice-phone")));
}

#[tokio::test]
async fn approve_exits_1_on_reject_2_on_expiry_and_3_on_a_bad_token() {
    let mut app = spawn_app().await;
    let (_, tokens) = with_phone(&mut app).await;
    let (device_token, token) = split(&tokens);

    let waiting = approve(&app, token, &[]).await;
    answer_over_http(&app, device_token, &waiting, "reject").await;
    assert_eq!(outcome(waiting).await.0, 1, "rejected");

    let waiting = approve(&app, token, &["--timeout", "10s"]).await;
    app.shift_clock(11).await;
    assert_eq!(outcome(waiting).await.0, 2, "expired");

    let out =
        step(&app, "tdapi_not-a-token", &["approve", "--user", "alice", "--title", "Deploy"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("api_token_invalid"), "a clear message on stderr");
    let notify_only = app.api_token("notify-only", &["notify"], &[]).await;
    let out = step(&app, &notify_only, &["approve", "--user", "alice", "--title", "Deploy"]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token_scope"));
}

#[tokio::test]
async fn approve_keeps_waiting_across_an_appliance_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut app = spawn_with(Options::default().arg("--http-addr").arg(&format!("127.0.0.1:{port}"))).await;
    let (_, tokens) = with_phone(&mut app).await;
    let (device_token, token) = (split(&tokens).0.to_owned(), split(&tokens).1.to_owned());
    let waiting = approve(&app, &token, &[]).await;
    let app = app.restart().await;
    assert_eq!(app.port, port);
    answer_over_http(&app, &device_token, &waiting, "approve").await;
    let (status, _, stderr) = outcome(waiting).await;
    assert_eq!(status, 0, "approved after the restart: {stderr}");
}

#[tokio::test]
async fn notify_prints_the_id_and_reads_the_body_from_stdin() {
    let mut app = spawn_app().await;
    let (paired, tokens) = with_phone(&mut app).await;
    let token = split(&tokens).1;
    let mut phone = Phone::connect(&app, &paired).await;
    let args = ["notify", "--user", "alice", "--title", "Build #42 failed", "--priority", "4"];
    let mut command = step(&app, token, &args);
    command.args(["--kind", "build_failure", "--link", "https://ci.example.com/42", "--body", "-"]);
    let mut child = command.stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"3 tests failed in crate::pairing").await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let got = phone.next("notification").await;
    assert_eq!(got["id"].as_str(), Some(id.as_str()));
    assert_eq!((got["body"].as_str(), got["priority"].as_u64()), (Some("3 tests failed in crate::pairing"), Some(4)));
    assert_eq!(got["link"], "https://ci.example.com/42");

    let out = step(&app, token, &["notify", "--user", "bob", "--title", "x"]).output().await.unwrap();
    assert!(!out.status.success(), "a token limited to alice cannot notify bob");
    assert!(String::from_utf8_lossy(&out.stderr).contains("token_scope"));
}
