//! The web UI in a real browser: runs the scripts in `tests/e2e/`
//! (playwright-core driving Debian's headless Chromium against the real
//! binary; the test command installs both). Each script's header lists what
//! it proves.

use std::process::Command;

/// Runs `tests/e2e/{script}` and checks it passed every step.
fn run(script: &str) {
    let root = env!("CARGO_MANIFEST_DIR");
    let scratch = tempfile::tempdir().unwrap();
    let output = Command::new("node")
        .arg(format!("{root}/tests/e2e/{script}"))
        .arg(crate::helpers::binary())
        .arg(scratch.path())
        .output()
        .expect("node (the test command installs nodejs, chromium and tests/e2e's packages)");
    let log = std::fs::read_to_string(scratch.path().join("appliance.log")).unwrap_or_default();
    let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}\nappliance log (end):\n{tail}",
        String::from_utf8_lossy(&output.stderr)
    );
    let name = script.trim_end_matches(".mjs");
    assert!(stdout.contains(&format!("{name}: all steps passed")), "{stdout}");
}

#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs Node.js and chromium: the test command (tests/run.sh) installs it and runs this"
)]
#[test]
fn the_admin_console_and_phone_app_work_in_a_real_browser() {
    run("ui.mjs");
}

#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs Node.js and chromium: the test command (tests/run.sh) installs it and runs this"
)]
#[test]
fn the_service_worker_shows_pushes_and_rejects_from_the_notification() {
    run("push.mjs");
}

#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs Node.js and chromium: the test command (tests/run.sh) installs it and runs this"
)]
#[test]
fn people_sign_in_through_a_real_openid_provider_in_a_real_browser() {
    run("oidc.mjs");
}
