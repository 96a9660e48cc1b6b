//! The offline loop: the whole story — serve, pair by SMS (console) and by
//! QR, notify, approve, a voice command, revoke, and the browser UI — run
//! again inside a network namespace that has nothing but loopback
//! (`unshare --net`, as root), proving the appliance needs nothing from
//! outside. The stories are the ordinary tests of those features, run by
//! this same test binary inside the namespace.

use std::process::Command;

const STORY: [&str; 8] = [
    "pairing::sms_pairing_end_to_end_in_console_mode",
    "qr::qr_otp_is_enforced",
    "messaging::a_notification_reaches_the_connected_phone_and_is_listed",
    "messaging::an_approval_is_decided_exactly_once_under_a_double_answer",
    "commands::a_voice_command_runs_the_matching_action_once_and_injection_runs_nothing",
    "commands::a_risky_action_runs_only_after_the_phone_approves",
    "mqtt::revoking_a_connected_phone_tells_it_then_closes_it_at_once_and_for_good",
    "ui::the_admin_console_and_phone_app_work_in_a_real_browser",
];

#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs root for a network namespace and every tool below: the test command (tests/run.sh) runs this"
)]
#[test]
fn the_whole_story_runs_with_nothing_but_loopback() {
    let exe = std::env::current_exe().expect("this test binary");
    // Inside: bring loopback up, prove there is no route anywhere else,
    // then run the story.
    let script = r#"ip link set lo up && [ -z "$(ip route show)" ] && [ -z "$(ip -6 route show | grep -v '^::1 ')" ] && exec "$@""#;
    let output = Command::new("unshare")
        .args(["--net", "sh", "-c", script, "sh"])
        .arg(&exe)
        .args(["--exact", "--test-threads=2"])
        .args(STORY)
        // The network namespace has no way to the test PostgreSQL server:
        // the story keeps its records in sled.
        .env_remove("TOPDOG_TEST_BACKEND")
        .output()
        .expect("unshare (util-linux) and ip (iproute2); the test command runs as root");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the offline story failed:\n{stdout}\n{stderr}");
    let passed = format!("test result: ok. {} passed", STORY.len());
    assert!(stdout.contains(&passed), "not every story ran offline:\n{stdout}");
}
