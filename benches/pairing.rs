//! Pairing benchmark: accept-invite throughput (one RS256 signature and one
//! flushed transaction each) and authenticated `GET /phone/me` (one RS256
//! verification), driven by `wrk` over HTTPS on loopback against the release
//! binary, reported beside `openssl speed rsa2048` from the same run.
//!
//! Run: `cargo bench --bench pairing` (needs `wrk` and `openssl`; the test
//! script installs them). Method and results: BENCHMARKS.md.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DURATION_S: u64 = 10;
const INVITES: usize = 24_000;

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

struct Server {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_topdog"))
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--mqtt-addr",
            "127.0.0.1:0",
            "--rate-invites-per-minute",
            "100000000",
        ])
        .args(["--rate-accepts-per-minute", "100000000", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start topdog");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut base, mut token) = (String::new(), String::new());
    while let Some(Ok(line)) = lines.next() {
        if let Some(url) = line.strip_prefix("Listening on ") {
            base = url.trim().to_owned();
        }
        if line.trim_start().starts_with("tdadm_") {
            token = line.trim().to_owned();
        }
        if line.starts_with("Next:") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Server { child, base, token }
}

/// POSTs JSON (with the admin token when given) and returns the JSON answer.
async fn post(client: &reqwest::Client, url: &str, token: Option<&str>, body: &Value) -> Value {
    let mut request = client.post(url).json(body);
    if let Some(token) = token {
        request = request.header("x-admin-token", token);
    }
    request.send().await.expect("request").json().await.expect("json answer")
}

async fn make_invites(server: &Server, client: &reqwest::Client, n: usize) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = n / 8;
    for t in 0..8 {
        let (client, url, token) =
            (client.clone(), format!("{}/phone/pairing/send-sms", server.base), server.token.clone());
        tasks.spawn(async move {
            let mut codes = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let body =
                    json!({"phone_number": "+14155552671", "user_id": format!("bench-{t}-{i}"), "user_name": "Bench"});
                let answer = post(&client, &url, Some(&token), &body).await;
                codes.push(answer["invite_code"].as_str().unwrap().to_owned());
            }
            codes
        });
    }
    let mut codes = Vec::new();
    while let Some(part) = tasks.join_next().await {
        codes.extend(part.unwrap());
    }
    codes
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

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built and run by `cargo test --all-targets`: only `cargo bench` measures
    }
    let (sign1, verify1) = openssl_speed(1);
    let (sign2, verify2) = openssl_speed(2);
    let scratch = tempfile::tempdir().expect("temp dir");
    let server = start(&scratch.path().join("data"));
    let pem = std::fs::read(scratch.path().join("data/ca.pem")).expect("ca");
    let client =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap()).build().unwrap();

    let codes = make_invites(&server, &client, INVITES).await;
    let codes_file = scratch.path().join("codes.txt");
    std::fs::write(&codes_file, codes.join("\n")).unwrap();
    let script = scratch.path().join("accept.lua");
    std::fs::write(&script, ACCEPT_LUA).unwrap();
    let duration = format!("{DURATION_S}s");
    let accept_url = server.base.clone();
    let accept = wrk(&[
        "-t2",
        "-c32",
        "-d",
        &duration,
        "-s",
        script.to_str().unwrap(),
        &accept_url,
        "--",
        codes_file.to_str().unwrap(),
    ]);
    let accepts = requests_per_sec(&accept);
    let accept_errors = non_2xx(&accept);

    let qr_url = format!("{}/phone/pairing/generate-qr", server.base);
    let qr = post(&client, &qr_url, Some(&server.token), &json!({"user_id": "me"})).await;
    let body = json!({"invite_code": qr["invite_code"], "device_id": "bench-me", "device_name": "B", "device_type": "android", "os_version": "1", "app_version": "1"});
    let paired = post(&client, &format!("{}/phone/pairing/accept-invite", server.base), None, &body).await;
    let bearer = format!("Authorization: Bearer {}", paired["jwt_token"].as_str().unwrap());
    let me_url = format!("{}/phone/me", server.base);
    let me = wrk(&["-t2", "-c64", "-d", &duration, "-H", &bearer, &me_url]);
    let me_rate = requests_per_sec(&me);
    let me_errors = non_2xx(&me);
    drop(server);
    std::thread::sleep(Duration::from_millis(100));

    println!("openssl speed rsa2048, 1 core:  sign {sign1:.0}/s  verify {verify1:.0}/s");
    println!("openssl speed rsa2048, 2 cores: sign {sign2:.0}/s  verify {verify2:.0}/s");
    println!("accept-invite (wrk -t2 -c32, {DURATION_S}s): {accepts:.0}/s, non-2xx {accept_errors}");
    println!("  = {:.2} of 1-core sign/s, {:.2} of 2-core sign/s (goal >= 0.5)", accepts / sign1, accepts / sign2);
    println!("GET /phone/me (wrk -t2 -c64, {DURATION_S}s): {me_rate:.0}/s, non-2xx {me_errors}");
    println!(
        "  = {:.2} of 1-core verify/s, {:.2} of 2-core verify/s (goal >= 0.33)",
        me_rate / verify1,
        me_rate / verify2
    );
}
