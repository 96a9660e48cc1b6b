//! Pairing benchmark: accept-invite throughput (one RS256 signature and one
//! flushed transaction each) and authenticated `GET /phone/me` (one RS256
//! verification), driven by `wrk` over HTTPS on loopback against the
//! appliance binary, reported beside `openssl speed rsa2048` from the same
//! run. Each invite is for a user of its own (a development licence with a
//! seat for each).
//!
//! Run: `cargo bench --features dev-license-key --bench pairing` (needs
//! `wrk` and `openssl`; the test script installs them). Without `--bench`
//! (as `cargo test --all-targets` runs it) a quick pass of a second or two
//! only checks that every step works. Method and results: BENCHMARKS.md.

#[path = "../tests/support/appliance.rs"]
#[allow(dead_code)]
mod appliance;

use appliance::Appliance;
use serde_json::json;
use std::process::{Command, Stdio};

/// How much to do.
struct Scale {
    /// Each `wrk` run, seconds.
    seconds: u64,
    /// Invites made before the accept run.
    invites: usize,
    /// Whether to measure `openssl speed` beside it.
    openssl: bool,
}

const FULL: Scale = Scale { seconds: 10, invites: 24_000, openssl: true };
const QUICK: Scale = Scale { seconds: 1, invites: 1_000, openssl: false };

fn openssl_speed(multi: usize) -> (f64, f64) {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "3", "-multi", &multi.to_string(), "rsa2048"])
        .stderr(Stdio::null())
        .output()
        .expect("openssl is needed for the benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().rev().find(|l| l.starts_with("rsa 2048") || l.starts_with("rsa  2048")).expect("openssl rsa line");
    let fields: Vec<f64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    (fields[fields.len() - 2], fields[fields.len() - 1])
}

const ACCEPT_LUA: &str = r#"
local codes = {}
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  for line in io.lines(args[1]) do table.insert(codes, line) end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  counter = counter + 1
  local i = counter * 2 + id - 1
  local code = codes[(i % #codes) + 1]
  local body = '{"invite_code":"' .. code .. '","device_id":"b' .. id .. '-' .. counter .. '","device_name":"Bench","device_type":"android","os_version":"14","app_version":"1"}'
  return wrk.format(nil, "/phone/pairing/accept-invite", nil, body)
end
"#;

fn wrk(args: &[&str]) -> String {
    let out = Command::new("wrk").args(args).output().expect("wrk is needed for the benchmark (apt-get install wrk)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn requests_per_sec(report: &str) -> f64 {
    let line = report.lines().find(|l| l.starts_with("Requests/sec:")).expect("wrk summary");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("rate")
}

fn non_2xx(report: &str) -> u64 {
    report.lines().find(|l| l.contains("Non-2xx")).and_then(|l| l.split_whitespace().last()?.parse().ok()).unwrap_or(0)
}

/// How many requests the run made ("N requests in …").
fn requests(report: &str) -> u64 {
    let line = report.lines().find(|l| l.contains(" requests in ")).expect("wrk request count");
    line.split_whitespace().next().and_then(|n| n.parse().ok()).expect("a count")
}

/// Checks a `wrk` report: something was answered, no socket errors, and
/// refusals only for codes used a second time (when the run outlasted the
/// invites).
fn check(name: &str, report: &str, fresh: u64) {
    let (made, refused) = (requests(report), non_2xx(report));
    assert!(made > 0 && made > refused, "{name}: nothing succeeded\n{report}");
    assert!(!report.contains("Socket errors"), "{name}: socket errors\n{report}");
    assert!(refused <= made.saturating_sub(fresh), "{name}: {refused} refused of {made}\n{report}");
}

#[tokio::main]
async fn main() {
    let scale = if std::env::args().any(|a| a == "--bench") { FULL } else { QUICK };
    let speed = scale.openssl.then(|| (openssl_speed(1), openssl_speed(2)));
    let scratch = tempfile::tempdir().expect("temp dir");
    let limits = ["--rate-invites-per-minute", "100000000", "--rate-accepts-per-minute", "100000000"];
    // A seat for every invite: each is for a user of its own, as a developer
    // pairing their phone (no other phone of theirs to alert).
    let seats = u32::try_from(scale.invites + 10).expect("seats");
    let app = std::sync::Arc::new(Appliance::start(scratch.path(), &limits, seats).await);

    let codes = appliance::make_invites(&app, scale.invites, |t, i| format!("bench-{t}-{i}")).await;
    let codes_file = scratch.path().join("codes.txt");
    std::fs::write(&codes_file, codes.join("\n")).expect("codes file");
    let script = scratch.path().join("accept.lua");
    std::fs::write(&script, ACCEPT_LUA).expect("script");
    let duration = format!("{}s", scale.seconds);
    let (script, codes_file) = (script.to_string_lossy(), codes_file.to_string_lossy());
    let accept = wrk(&["-t2", "-c32", "-d", &duration, "-s", &script, &app.ready.api_url, "--", &codes_file]);
    check("accept-invite", &accept, codes.len() as u64);

    let (status, qr) = app.request("/phone/pairing/generate-qr", Some(&json!({"user_id": "me"})), true).await;
    assert_eq!(status, 200, "QR: {qr}");
    let body = json!({"invite_code": qr["invite_code"], "device_id": "bench-me", "device_name": "B", "device_type": "android", "os_version": "1", "app_version": "1"});
    let (status, paired) = app.request("/phone/pairing/accept-invite", Some(&body), false).await;
    assert_eq!(status, 200, "pairing by QR: {paired}");
    let bearer = format!("Authorization: Bearer {}", paired["jwt_token"].as_str().expect("a token"));
    let me = wrk(&["-t2", "-c64", "-d", &duration, "-H", &bearer, &app.url("/phone/me")]);
    check("GET /phone/me", &me, u64::MAX);
    drop(app);

    let (accepts, me_rate) = (requests_per_sec(&accept), requests_per_sec(&me));
    println!("accept-invite (wrk -t2 -c32, {duration}): {accepts:.0}/s, non-2xx {}", non_2xx(&accept));
    println!("GET /phone/me (wrk -t2 -c64, {duration}): {me_rate:.0}/s, non-2xx {}", non_2xx(&me));
    if let Some(((sign1, verify1), (sign2, verify2))) = speed {
        println!("openssl speed rsa2048, 1 core:  sign {sign1:.0}/s  verify {verify1:.0}/s");
        println!("openssl speed rsa2048, 2 cores: sign {sign2:.0}/s  verify {verify2:.0}/s");
        println!(
            "accept = {:.2} of 1-core sign/s, {:.2} of 2-core sign/s (goal >= 0.5)",
            accepts / sign1,
            accepts / sign2
        );
        println!(
            "me = {:.2} of 1-core verify/s, {:.2} of 2-core verify/s (goal >= 0.33)",
            me_rate / verify1,
            me_rate / verify2
        );
    }
}
