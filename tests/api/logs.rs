//! Request ids and logs: every answer carries `x-request-id` (the caller's
//! plain id, else a new one), and with `--log-format json` each log line is
//! one JSON object whose span names the request it was written for.

use crate::helpers::{accept_body, spawn_with, Options};
use serde_json::Value;

#[tokio::test]
async fn answers_carry_a_request_id_that_the_json_log_lines_name() {
    let app = spawn_with(Options::default().process().arg("--log-format").arg("json")).await;
    let answer = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = answer.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()), "a new id: {id}");

    let (_, invite) = app.send_sms("+14155552671", "rita").await;
    let body = accept_body(invite["invite_code"].as_str().unwrap(), "phone-r", None);
    let accepted =
        app.client.post(app.url("/phone/pairing/accept-invite")).header("x-request-id", "ci-build-42").json(&body);
    let accepted = accepted.send().await.unwrap();
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.headers()["x-request-id"], "ci-build-42", "the caller's id is echoed");

    let log = app.log();
    let lines: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty() && lines.len() == log.lines().count(), "every line is JSON:\n{log}");
    let paired = lines.iter().find(|l| l["fields"]["message"] == "phone paired").expect("the pairing's log line");
    assert_eq!(paired["span"]["id"], "ci-build-42", "{paired}");
    assert_eq!(paired["span"]["path"], "/phone/pairing/accept-invite", "{paired}");
}
