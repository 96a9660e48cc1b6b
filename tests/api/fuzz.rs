//! Schema-driven fuzzing: schemathesis (PyPI; the test command installs it
//! in `target/pyenv`) runs every operation of `/openapi.json` against the
//! live appliance with the admin token and a device token, at least 2,000
//! generated cases, with its default checks except
//! `positive_data_acceptance` (some refusals are semantic — an unknown
//! country's number, an id that does not exist — and no schema can say so).
//! Zero 5xx, nothing that breaks the document, and healthy afterwards.
//! `DELETE /phone/me` and `POST /phone/token/refresh` are left out because
//! they end the device token the rest of the run uses. A request that
//! meets a network-level failure is retried twice, as HTTP clients do: an
//! HTTP/1.1 connection the appliance closes after 10 s without a request
//! (its header-read timeout) can be reused by the client at that very
//! moment, which Python reports as "EOF occurred in violation of
//! protocol"; under the full test load this happened about once in five
//! runs.

use crate::helpers::{spawn_with, Options};
use std::process::Command;

#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs schemathesis: the test command (tests/run.sh) installs it and runs this"
)]
#[tokio::test]
async fn schemathesis_finds_nothing() {
    let mut app = spawn_with(Options::default().process().arg("--long-poll-max").arg("1s")).await;
    let token = app.pair("fuzz", "fuzz-phone").await;
    let st = concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/bin/st");
    let output = Command::new(st)
        .args(["run", &app.url("/openapi.json")])
        .arg("--tls-verify")
        .arg(app.ca_file())
        .args(["-H", &format!("x-admin-token: {}", app.admin_token)])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", "50", "--seed", "1", "--request-timeout", "10", "--request-retries", "2"])
        .args(["--exclude-path", "/phone/events"])
        .args(["--exclude-operation-id", "unpairSelf", "--exclude-operation-id", "refreshToken"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(app.dir.path()) // its cache stays out of the repository
        .output()
        .expect("schemathesis (the test command installs it in target/pyenv)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated: u64 = report
        .lines()
        .find_map(|l| l.trim().split_once(" generated").and_then(|(n, _)| n.trim().parse().ok()))
        .expect("a case count in the report");
    assert!(generated >= 2000, "only {generated} cases:\n{report}");
    // A fresh client: the pooled connection from before the run has idled out.
    let fresh = crate::helpers::client_trusting(&app.ca_file());
    let health = fresh.get(app.url("/healthz")).send().await.expect("the appliance answers after the run");
    assert_eq!(health.status(), 200, "healthy after the run");
    assert!(!app.log().contains("internal error"), "a request ended in an internal error");
}
