//! The web UI in a real browser: runs `tests/e2e/ui.mjs` (playwright-core
//! driving Debian's headless Chromium against the real binary; the test
//! command installs both). The script's own header lists what it proves.

use std::process::Command;

#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs Node.js and chromium: the test command (tests/run.sh) installs it and runs this"
)]
#[test]
fn the_admin_console_and_phone_app_work_in_a_real_browser() {
    let root = env!("CARGO_MANIFEST_DIR");
    let scratch = tempfile::tempdir().unwrap();
    let output = Command::new("node")
        .arg(format!("{root}/tests/e2e/ui.mjs"))
        .arg(crate::helpers::binary())
        .arg(scratch.path())
        .output()
        .expect("node (the test command installs nodejs, chromium and tests/e2e's packages)");
    let log = std::fs::read_to_string(scratch.path().join("appliance.log")).unwrap_or_default();
    let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(
        output.status.success(),
        "{}\n{}\nappliance log (end):\n{tail}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("ui: all steps passed"));
}
