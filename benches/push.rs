//! Web Push benchmark: notifications to 1,000 devices with one push
//! subscription each, against a local HTTPS push service on loopback that
//! answers 201 and counts: Web Push messages encrypted (one P-256 ECDH
//! each, RFC 8291) and sent per second, beside `openssl speed ecdhp256` on
//! one core in the same run; and the notify request's latency (p50, p99)
//! to a user without subscriptions, alone and while the pushes go out.
//!
//! Run: `cargo bench --features dev-license-key --bench push` (needs
//! `openssl`). Without `--bench` (as `cargo test --all-targets` runs it) a
//! quick pass of 40 devices only checks that every step works. Method and
//! results: BENCHMARKS.md.

#[path = "../tests/support/appliance.rs"]
#[allow(dead_code)]
mod appliance;
#[path = "../tests/support/push_service.rs"]
#[allow(dead_code)]
mod push_service;

use appliance::Appliance;
use push_service::PushService;
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much to do.
struct Scale {
    /// Devices, each with one subscription.
    devices: usize,
    /// Rounds of one notification to every device.
    rounds: usize,
    /// Notify requests timed for the latency figures.
    timed: usize,
    /// Whether to measure `openssl speed` beside it.
    openssl: bool,
}

const FULL: Scale = Scale { devices: 1_000, rounds: 5, timed: 300, openssl: true };
const QUICK: Scale = Scale { devices: 40, rounds: 1, timed: 20, openssl: false };
/// Users the devices belong to (each takes a seat).
const USERS: usize = 8;

/// `openssl speed ecdhp256` on one core: operations a second.
fn openssl_ecdh() -> f64 {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "3", "ecdhp256"])
        .stderr(Stdio::null())
        .output()
        .expect("openssl is needed for the benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.contains("ecdh") && l.contains("nistp256")).expect("openssl ecdh line");
    line.split_whitespace().last().and_then(|v| v.parse().ok()).expect("ops/s")
}

/// Pairs `device` for `user` by SMS invite; its device token.
async fn pair(app: &Appliance, user: &str, device: &str) -> String {
    let body = json!({"phone_number": "+14155552671", "user_id": user, "user_name": "Bench"});
    let (status, invite) = app.request("/phone/pairing/send-sms", Some(&body), true).await;
    assert_eq!(status, 200, "invite: {invite}");
    let accept = json!({"invite_code": invite["invite_code"], "device_id": device, "device_name": "B", "device_type": "android", "os_version": "14", "app_version": "1"});
    let (status, paired) = app.request("/phone/pairing/accept-invite", Some(&accept), false).await;
    assert_eq!(status, 200, "accept: {paired}");
    paired["jwt_token"].as_str().expect("a token").to_owned()
}

/// Pairs `n` devices over [`USERS`] users, each with a subscription.
async fn fleet(app: &Arc<Appliance>, push: &Arc<PushService>, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for u in 0..USERS {
        let (app, push) = (app.clone(), push.clone());
        tasks.spawn(async move {
            for d in 0..n / USERS {
                let device = format!("u{u}-d{d}");
                let token = pair(&app, &format!("bench-{u}"), &device).await;
                let answer = app
                    .client
                    .post(app.url("/phone/push/subscriptions"))
                    .bearer_auth(&token)
                    .json(&push.subscribe(&device))
                    .send()
                    .await
                    .expect("register");
                assert_eq!(answer.status(), 201, "{:?}", answer.text().await);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("pairing task");
    }
}

/// Times `n` notify requests to `user`, one after another.
async fn notify_latencies(app: &Appliance, user: &str, n: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"user_id": user, "title": format!("timed {i}"), "priority": 3});
        let started = Instant::now();
        let (status, answer) = app.request("/phone/notify", Some(&body), true).await;
        times.push(started.elapsed());
        assert_eq!(status, 200, "notify: {answer}");
    }
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let scale = if std::env::args().any(|a| a == "--bench") { FULL } else { QUICK };
    let ecdh = scale.openssl.then(openssl_ecdh);
    let push = Arc::new(PushService::sink().await);
    let scratch = tempfile::tempdir().expect("temp dir");
    let ca = push.ca_file().to_string_lossy().into_owned();
    let args = [
        "--push-allowed-hosts",
        "127.0.0.1",
        "--push-ca-cert",
        &ca,
        "--rate-invites-per-minute",
        "100000000",
        "--rate-accepts-per-minute",
        "100000000",
    ];
    let app = Arc::new(Appliance::start(scratch.path(), &args, 100).await);
    fleet(&app, &push, scale.devices).await;
    pair(&app, "quiet", "quiet-phone").await;
    let devices = scale.devices / USERS * USERS;

    let alone = notify_latencies(&app, "quiet", scale.timed).await;

    let started = Instant::now();
    let timing = {
        let app = app.clone();
        let timed = scale.timed;
        tokio::spawn(async move { notify_latencies(&app, "quiet", timed).await })
    };
    for round in 0..scale.rounds {
        for u in 0..USERS {
            let body = json!({"user_id": format!("bench-{u}"), "title": format!("round {round}"), "priority": 4});
            let (status, answer) = app.request("/phone/notify", Some(&body), true).await;
            assert_eq!(status, 200, "notify: {answer}");
        }
    }
    let expected = devices * scale.rounds;
    let deadline = Instant::now() + Duration::from_secs(300);
    while push.count() < expected {
        assert!(Instant::now() < deadline, "{} of {expected} pushes arrived", push.count());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let busy = timing.await.expect("timing task");
    let rate = expected as f64 / elapsed.as_secs_f64();
    drop(app);

    println!("Web Push: {expected} messages to {devices} subscriptions in {:.2} s: {rate:.0}/s", elapsed.as_secs_f64());
    println!(
        "notify to a user without subscriptions, {} requests: alone p50 {:.2} ms p99 {:.2} ms; while pushing p50 {:.2} ms p99 {:.2} ms",
        scale.timed,
        percentile(&alone, 0.5),
        percentile(&alone, 0.99),
        percentile(&busy, 0.5),
        percentile(&busy, 0.99)
    );
    if let Some(ecdh) = ecdh {
        println!("openssl speed ecdhp256, 1 core: {ecdh:.0} op/s");
        println!("pushes = {:.2} of 1-core ECDH op/s (goal >= 0.5)", rate / ecdh);
    }
}
