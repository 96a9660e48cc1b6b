//! Voice and text commands end to end: a phone's `voice_command` over
//! MQTT/TLS runs the matching allow-listed action (a test script) with the
//! parameters read from the text and reports `build_status` and
//! `command_result`; unknown or injection-looking text runs nothing and
//! gets the list of what the phone can say; a command id runs once; a risky
//! action waits for the phone's approval; the LLM matcher (a local fake of
//! the Anthropic API) may only pick from the allow-list.

use crate::fakes;
use crate::helpers::{send, spawn_app, spawn_with, Options, TestApp};
use crate::phone::Phone;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Installs a script that appends its arguments to a marker file, and an
/// `actions.toml` using it; the marker's path.
fn install_actions(app: &TestApp) -> PathBuf {
    let script = app.dir.path().join("build.sh");
    let marker = app.dir.path().join("ran.txt");
    std::fs::write(&script, "#!/bin/sh\nmarker=\"$1\"; shift\necho \"$*\" >> \"$marker\"\necho \"built $1 for $2\"\n")
        .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (script, marker_s) = (script.display().to_string(), marker.display().to_string());
    let toml = format!(
        r#"
[[action]]
name = "nightly"
description = "Run the nightly build and deploy it"
phrases = ["nightly build"]
argv = ["{script}", "{marker_s}", "{{project}}", "{{env}}"]
timeout_s = 30
[[action.param]]
name = "project"
values = ["alpha", "beta"]
[[action.param]]
name = "env"
values = ["staging", "production"]
default = "staging"

[[action]]
name = "release"
description = "Ship the release"
phrases = ["ship the release"]
argv = ["{script}", "{marker_s}", "release", "prod"]
confirm = true
"#
    );
    std::fs::write(app.data_dir().join("actions.toml"), toml).unwrap();
    marker
}

fn ran(marker: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(marker).unwrap_or_default().lines().map(str::to_owned).collect()
}

async fn command(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    send(app.client.post(app.url("/phone/commands")).bearer_auth(token).json(&body)).await
}

#[tokio::test]
async fn a_voice_command_runs_the_matching_action_once_and_injection_runs_nothing() {
    let mut app = spawn_app().await;
    let marker = install_actions(&app);
    let paired = app.pair_full("alice", "phone-a").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();
    let mut phone = Phone::connect(&app, &paired).await;
    let text = "Run the nightly build for Project Alpha and deploy to staging";
    phone.send("voice_command", json!({"id": "c1", "text": text})).await;
    let started = phone.next("command_result").await;
    assert_eq!((started["status"].as_str(), started["command_id"].as_str()), (Some("started"), Some("c1")));
    assert_eq!(started["params"], json!({"project": "alpha", "env": "staging"}));
    assert_eq!(phone.next("build_status").await["state"], "started");
    let done = phone.next("command_result").await;
    assert_eq!((done["status"].as_str(), done["exit_code"].as_i64()), (Some("succeeded"), Some(0)), "{done}");
    assert_eq!(done["output_tail"], "built alpha for staging\n");
    assert_eq!(phone.next("build_status").await["state"], "succeeded");
    assert_eq!(ran(&marker), ["alpha staging"]);

    let (status, again) = command(&app, &token, json!({"id": "c1", "text": text})).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("succeeded")), "a repeated id is not run again");

    for (id, text) in [("c2", "; rm -rf /"), ("c3", "$(touch /tmp/pwned) nightly"), ("c4", "deploy everything now")] {
        phone.send("voice_command", json!({"id": id, "text": text})).await;
        let answer = phone.next("command_result").await;
        assert_eq!(answer["command_id"], id);
        let status = answer["status"].as_str().unwrap();
        assert!(status == "unknown" || status == "needs_parameter", "{text}: {answer}");
        if status == "unknown" {
            assert!(answer["message"].as_str().unwrap().contains("\"nightly build\""), "{answer}");
        }
    }
    assert_eq!(ran(&marker), ["alpha staging"], "nothing else ran");
    let (status, bad) = command(&app, &token, json!({"text": ""})).await;
    assert_eq!((status, bad["error"].as_str()), (400, Some("invalid_field")));
}

#[tokio::test]
async fn a_risky_action_runs_only_after_the_phone_approves() {
    let mut app = spawn_app().await;
    let marker = install_actions(&app);
    let paired = app.pair_full("bob", "phone-b").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();
    let mut phone = Phone::connect(&app, &paired).await;
    let (status, waiting) = command(&app, &token, json!({"id": "r1", "text": "ship the release"})).await;
    assert_eq!((status, waiting["status"].as_str()), (200, Some("awaiting_approval")), "{waiting}");
    let approval_id = waiting["approval_id"].as_str().unwrap().to_owned();
    let request = phone.next("approval_request").await;
    assert_eq!(request["id"].as_str(), Some(approval_id.as_str()));
    assert_eq!(request["choices"], json!([]), "a plain confirm: the requesting phone is never handed a number");
    assert!(ran(&marker).is_empty(), "nothing runs before the approval");
    let (_, approval) = app.admin_get(&format!("/phone/approvals/{approval_id}")).await;
    assert_eq!(approval["code"], "", "{approval}");
    assert!(!waiting["message"].as_str().unwrap().chars().any(|c| c.is_ascii_digit()), "{waiting}");
    phone.send("approval_response", json!({"id": "x", "approval_id": approval_id, "decision": "approve"})).await;
    loop {
        let result = phone.next("command_result").await;
        match result["status"].as_str() {
            Some("succeeded") => break,
            Some("awaiting_approval" | "started") => {}
            _ => panic!("{result}"),
        }
    }
    assert_eq!(ran(&marker), ["release prod"]);
}

#[tokio::test]
async fn the_llm_matcher_only_chooses_from_the_allow_list() {
    let mut llm = fakes::anthropic("sk-test", "nightly", json!({"project": "beta"})).await;
    let options = Options::default().env("ANTHROPIC_API_KEY", "sk-test").env("ANTHROPIC_BASE_URL", &llm.url());
    let mut app = spawn_with(options).await;
    let marker = install_actions(&app);
    let paired = app.pair_full("cleo", "phone-c").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();
    let mut phone = Phone::connect(&app, &paired).await;
    let (status, started) =
        command(&app, &token, json!({"text": "kick off the overnight job for the second project"})).await;
    assert_eq!((status, started["status"].as_str()), (200, Some("started")), "{started}");
    assert_eq!(started["params"], json!({"project": "beta", "env": "staging"}));
    let asked = llm.wait_for(1).await;
    assert_eq!(asked[0].body, "kick off the overnight job for the second project");
    let (_, offline) = command(&app, &token, json!({"text": "nightly build for alpha"})).await;
    assert_eq!(offline["params"]["project"], "alpha", "the offline matcher answers first");
    assert_eq!(llm.messages().len(), 1, "the LLM is not asked when the offline matcher knows");
    let mut finished = 0;
    while finished < 2 {
        let result = phone.next("command_result").await;
        assert_ne!(result["status"], "failed", "{result}");
        finished += usize::from(result["status"] == "succeeded");
    }
    let mut lines = ran(&marker);
    lines.sort();
    assert_eq!(lines, ["alpha staging", "beta staging"]);
}
