//! One box or several: accept-invite throughput and p99 (`wrk` over HTTPS,
//! as the pairing benchmark), notify → phone latency (p50/p99 of `POST
//! /phone/notify` at 20/s until the phone has it over MQTT/TLS) and
//! throughput (a burst posted 30 at a time until the phone has all) with the
//! records in sled, in PostgreSQL on one node, and in PostgreSQL shared by
//! three nodes (invites accepted on all three at once; notifications posted
//! to the third node for a phone connected to the first), side by side in
//! one run. PostgreSQL is Debian's, started for the run with its defaults
//! (fsync on, synchronous commit) on loopback, as sled flushes each commit.
//!
//! Run: `cargo bench --features dev-license-key --bench nodes` (needs `wrk`
//! and PostgreSQL; the test command installs them). Without `--bench` (as
//! `cargo test --all-targets` runs it) a quick pass only checks that every
//! step works. Method and results: BENCHMARKS.md.

#[path = "../tests/support/appliance.rs"]
#[allow(dead_code)]
mod appliance;

use appliance::Appliance;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much to do.
#[derive(Clone, Copy)]
struct Scale {
    /// Each `wrk` run, seconds.
    seconds: u64,
    /// Invites made before the accept run.
    invites: usize,
    /// Notifications timed.
    notifications: usize,
    /// Notifications in the burst.
    burst: usize,
    /// Whether the rates are what the run is for: then a node's invites
    /// must last the run (the quick pass only shows that the benchmark
    /// runs, and may use them up).
    measured: bool,
}

const FULL: Scale = Scale { seconds: 10, invites: 30_000, notifications: 400, burst: 3_000, measured: true };
const QUICK: Scale = Scale { seconds: 1, invites: 300, notifications: 10, burst: 60, measured: false };
/// Notifications posted a second.
const NOTIFY_RATE: u64 = 20;
/// `wrk` connections in all, shared by the nodes.
const CONNECTIONS: usize = 30;
const LIMITS: [&str; 4] = ["--rate-invites-per-minute", "100000000", "--rate-accepts-per-minute", "100000000"];

const ACCEPT_LUA: &str = r#"
local codes = {}
local counter = 0
function init(args)
  for line in io.lines(args[1]) do table.insert(codes, line) end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  counter = counter + 1
  local code = codes[(counter % #codes) + 1]
  local body = '{"invite_code":"' .. code .. '","device_id":"' .. args_prefix .. counter .. '","device_name":"Bench","device_type":"android","os_version":"14","app_version":"1"}'
  return wrk.format(nil, "/phone/pairing/accept-invite", nil, body)
end
"#;

/// A throwaway PostgreSQL server for the run.
struct Postgres {
    dir: tempfile::TempDir,
    url: String,
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/postgres.sh")
}

impl Postgres {
    fn start() -> Postgres {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut start = Command::new(script());
        if statements() {
            start.env("PG_OPTS", "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all");
        }
        let out = start.arg("start").arg(dir.path().join("pg")).output().expect("postgres.sh");
        assert!(out.status.success(), "PostgreSQL: {}", String::from_utf8_lossy(&out.stderr));
        Postgres { url: String::from_utf8_lossy(&out.stdout).trim().to_owned(), dir }
    }

    /// A new database; its URL.
    async fn database(&self, name: &str) -> String {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create database");
        self.url.replace("/postgres", &format!("/{name}"))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(self.dir.path().join("pg")).output();
    }
}

/// The nodes of one configuration (the first made the keys).
struct Setup {
    name: &'static str,
    nodes: Vec<Arc<Appliance>>,
    _dirs: Vec<tempfile::TempDir>,
}

async fn setup(name: &'static str, database: Option<String>, nodes: usize, scale: Scale) -> Setup {
    let mut dirs = vec![tempfile::tempdir().expect("temp dir")];
    let db: Vec<String> = database.map(|url| vec!["--database-url".to_owned(), url]).unwrap_or_default();
    let args: Vec<&str> = LIMITS.iter().copied().chain(db.iter().map(String::as_str)).collect();
    let named = |i: usize| [args.clone(), vec!["--node-name", ["node-1", "node-2", "node-3"][i]]].concat();
    let seats = u32::try_from(scale.invites + 10).expect("seats");
    let first = Arc::new(Appliance::start(dirs[0].path(), &named(0), seats).await);
    let mut all = vec![first.clone()];
    for i in 1..nodes {
        let dir = tempfile::tempdir().expect("temp dir");
        all.push(Arc::new(Appliance::start_node(&first, dir.path(), &named(i)).await));
        dirs.push(dir);
    }
    Setup { name, nodes: all, _dirs: dirs }
}

/// CPU ticks used so far by PostgreSQL's processes (its backends stay for
/// the nodes' pooled connections).
fn postgres_ticks() -> u64 {
    let pids = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    let pids = pids.filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok());
    let is_postgres =
        |pid: &u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres");
    pids.filter(is_postgres).map(appliance::cpu_ticks).sum()
}

/// CPU ticks used so far by the setup's nodes, and by PostgreSQL.
fn cpu_ticks(setup: &Setup) -> [u64; 2] {
    [setup.nodes.iter().map(|node| appliance::cpu_ticks(node.pid())).sum(), postgres_ticks()]
}

/// What the accept run measured.
struct Accepts {
    /// Accepts a second (2xx answers), over every node.
    rate: f64,
    /// The 99th percentile of an accept's answer, the worst node's.
    p99: Duration,
    /// Requests answered with anything but a 2xx.
    refused: u64,
    /// CPU milliseconds per accept: the nodes', PostgreSQL's.
    cpu_ms: [f64; 2],
}

/// Accepts/s over every node at once (each its own share of the codes and
/// of [`CONNECTIONS`]), how many requests were refused, and the CPU each
/// accept cost the nodes and PostgreSQL.
async fn accept_rate(setup: &Setup, scale: Scale) -> Accepts {
    let codes = appliance::make_invites(&setup.nodes[0], scale.invites, |t, i| format!("bench-{t}-{i}")).await;
    let share = codes.len().div_ceil(setup.nodes.len());
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut runs = Vec::new();
    let before = cpu_ticks(setup);
    for (i, (node, part)) in setup.nodes.iter().zip(codes.chunks(share)).enumerate() {
        let (codes_file, script) =
            (scratch.path().join(format!("codes-{i}")), scratch.path().join(format!("s-{i}.lua")));
        std::fs::write(&codes_file, part.join("\n")).expect("codes");
        std::fs::write(&script, format!("args_prefix = \"n{i}-\"\n{ACCEPT_LUA}")).expect("script");
        let connections = (CONNECTIONS / setup.nodes.len()).to_string();
        let args =
            ["-t1", "--latency", "-c", &connections, "-d", &format!("{}s", scale.seconds), "-s"].map(str::to_owned);
        let mut command = Command::new("wrk");
        command.args(args).arg(&script).arg(&node.ready.api_url).arg("--").arg(&codes_file);
        runs.push(std::thread::spawn(move || command.output().expect("wrk (apt-get install wrk)")));
    }
    let (mut rate, mut refused, mut p99) = (0.0, 0, Duration::ZERO);
    for run in runs {
        let report = String::from_utf8_lossy(&run.join().expect("wrk").stdout).into_owned();
        let line = report.lines().find(|l| l.starts_with("Requests/sec:")).unwrap_or_else(|| panic!("wrk: {report}"));
        let requests_per_second: f64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a rate");
        let requests: u64 = report
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("wrk: {report}"));
        let not_2xx: u64 = report
            .lines()
            .find(|l| l.contains("Non-2xx"))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or(0);
        let accepted = requests.saturating_sub(not_2xx);
        let lasted = (accepted as usize) < share || !scale.measured;
        assert!(lasted, "{}: all {share} invites of a node were accepted; make more", setup.name);
        rate += requests_per_second * accepted as f64 / requests.max(1) as f64;
        p99 = p99.max(wrk_p99(&report));
        refused += not_2xx;
        assert!(!report.contains("Socket errors"), "{}: socket errors\n{report}", setup.name);
    }
    let after = cpu_ticks(setup);
    let accepts = (rate * scale.seconds as f64).max(1.0);
    let cpu_ms = [0, 1].map(|i| (after[i] - before[i]) as f64 * 10.0 / accepts);
    Accepts { rate, p99, refused, cpu_ms }
}

/// The 99% line of wrk's latency distribution (`--latency`).
fn wrk_p99(report: &str) -> Duration {
    let value = report.lines().find_map(|l| l.trim().strip_prefix("99%")).map(str::trim).unwrap_or_default();
    let split = value.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().unwrap_or_else(|_| panic!("wrk's 99% line: {report}"));
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => panic!("wrk's 99% unit {unit:?}"),
    };
    Duration::from_secs_f64(number * scale)
}

fn tls(paired: &Value) -> Arc<rustls::ClientConfig> {
    let pem = |field: &str| paired[field].as_str().expect("PEM").as_bytes().to_vec();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem("mqtt_ca_cert").as_slice()) {
        roots.add(cert.expect("CA")).expect("root");
    }
    let chain =
        rustls_pemfile::certs(&mut pem("mqtt_client_cert").as_slice()).collect::<Result<Vec<_>, _>>().expect("cert");
    let key = rustls_pemfile::private_key(&mut pem("mqtt_client_key").as_slice()).expect("key").expect("a key");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client certificate");
    Arc::new(config)
}

/// The phone of `paired` on `node`'s MQTT port, subscribed to its
/// notifications.
async fn phone(node: &Appliance, paired: &Value) -> EventLoop {
    let id = paired["device_id"].as_str().expect("device id");
    let mut options = MqttOptions::new(id, "127.0.0.1", node.ready.mqtt_port());
    options.set_credentials(id, paired["jwt_token"].as_str().expect("token"));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls(paired))));
    let (client, mut events) = AsyncClient::new(options, 100);
    let topic = format!("{}/notification", paired["mqtt_topic_prefix"].as_str().expect("prefix"));
    client.subscribe(topic, QoS::AtLeastOnce).await.expect("subscribe");
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("phone: {e}"),
        }
    }
    std::mem::forget(client);
    events
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// A phone of user `solo` paired on the first node and connected there.
async fn solo_phone(setup: &Setup) -> EventLoop {
    let first = &setup.nodes[0];
    let (status, qr) = first.request("/phone/pairing/generate-qr", Some(&json!({"user_id": "solo"})), true).await;
    assert_eq!(status, 200, "QR: {qr}");
    let body = json!({"invite_code": qr["invite_code"], "device_id": "solo-phone", "device_name": "B",
        "device_type": "android", "os_version": "1", "app_version": "1"});
    let (status, paired) = first.request("/phone/pairing/accept-invite", Some(&body), false).await;
    assert_eq!(status, 200, "pairing: {paired}");
    phone(first, &paired).await
}

/// Waits until the phone has `n` notifications; the title of each.
async fn received(events: &mut EventLoop, n: usize) -> Vec<String> {
    let mut titles = Vec::with_capacity(n);
    while titles.len() < n {
        if let Event::Incoming(Packet::Publish(p)) = events.poll().await.expect("the phone's connection") {
            let message: Value = serde_json::from_slice(&p.payload).expect("JSON");
            titles.push(message["title"].as_str().expect("a title").to_owned());
        }
    }
    titles
}

/// Notifications a second from a burst posted to the last node, 30 at a
/// time, until the phone on the first has every one.
async fn notify_rate(setup: &Setup, events: &mut EventLoop, scale: Scale) -> f64 {
    let last = setup.nodes[setup.nodes.len() - 1].clone();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    for _ in 0..CONNECTIONS {
        let (node, next) = (last.clone(), next.clone());
        tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < scale.burst {
                let (status, answer) =
                    node.request("/phone/notify", Some(&json!({"user_id": "solo", "title": "burst"})), true).await;
                assert_eq!(status, 200, "notify: {answer}");
            }
        });
    }
    let titles = received(events, scale.burst).await;
    assert!(titles.iter().all(|t| t == "burst"), "only the burst's notifications");
    scale.burst as f64 / started.elapsed().as_secs_f64()
}

/// p50 and p99 of notify (posted to the last node) → the phone on the first.
async fn notify_latency(setup: &Setup, events: &mut EventLoop, scale: Scale) -> (Duration, Duration) {
    let last = setup.nodes[setup.nodes.len() - 1].clone();
    let base = Instant::now();
    let total = scale.notifications;
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_nanos(1_000_000_000 / NOTIFY_RATE));
        for _ in 0..total {
            ticks.tick().await;
            let body = json!({"user_id": "solo", "title": base.elapsed().as_nanos().to_string()});
            let node = last.clone();
            tokio::spawn(async move {
                let (status, answer) = node.request("/phone/notify", Some(&body), true).await;
                assert_eq!(status, 200, "notify: {answer}");
            });
        }
    });
    let mut samples = Vec::with_capacity(total);
    while samples.len() < total {
        let title = received(events, 1).await.pop().unwrap_or_default();
        let sent: u64 = title.parse().expect("a send time");
        samples.push(base.elapsed() - Duration::from_nanos(sent));
    }
    samples.sort();
    (percentile(&samples, 0.50), percentile(&samples, 0.99))
}

#[tokio::main]
async fn main() {
    let scale = if std::env::args().any(|a| a == "--bench") { FULL } else { QUICK };
    let postgres = Postgres::start();
    let one = postgres.database("bench_one").await;
    let setups = [
        setup("sled, 1 node", None, 1, scale).await,
        setup("PostgreSQL, 1 node", Some(one.clone()), 1, scale).await,
        setup("PostgreSQL, 3 nodes", Some(postgres.database("bench_three").await), 3, scale).await,
    ];
    let mut rows = Vec::new();
    for (i, setup) in setups.iter().enumerate() {
        eprintln!("{}: accept-invite", setup.name);
        let counted = (statements() && i == 1).then_some(one.as_str());
        let accepts = match counted {
            Some(url) => count_statements(url, scale, accept_rate(setup, scale)).await,
            None => accept_rate(setup, scale).await,
        };
        eprintln!("{}: notify → phone", setup.name);
        let mut events = solo_phone(setup).await;
        let (p50, p99) = notify_latency(setup, &mut events, scale).await;
        let notified = notify_rate(setup, &mut events, scale).await;
        rows.push(Row { name: setup.name, accepts, p50, p99, notified });
    }
    print_rows(&rows);
}

/// One configuration's results.
struct Row {
    name: &'static str,
    accepts: Accepts,
    p50: Duration,
    p99: Duration,
    notified: f64,
}

/// The results, and each against sled's (the first row).
fn print_rows(rows: &[Row]) {
    let sled = &rows[0];
    println!(
        "{:<20} {:>9} {:>7} {:>9} {:>10} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}",
        "",
        "accepts/s",
        "non-2xx",
        "acc p99",
        "notify p50",
        "notify p99",
        "notify/s",
        "×acc/s",
        "×acc p99",
        "×ntf/s",
        "×ntf p99",
        "node ms/acc",
        "PG ms/acc"
    );
    for row in rows {
        println!(
            "{:<20} {:>9.0} {:>7} {:>9.2?} {:>10.2?} {:>10.2?} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>9.2}",
            row.name,
            row.accepts.rate,
            row.accepts.refused,
            row.accepts.p99,
            row.p50,
            row.p99,
            row.notified,
            row.accepts.rate / sled.accepts.rate,
            row.accepts.p99.as_secs_f64() / sled.accepts.p99.as_secs_f64(),
            row.notified / sled.notified,
            row.p99.as_secs_f64() / sled.p99.as_secs_f64(),
            row.accepts.cpu_ms[0],
            row.accepts.cpu_ms[1],
        );
    }
}

/// Whether to print what PostgreSQL's time went to in the one-node
/// accept-invite run (`TOPDOG_BENCH_STATEMENTS=1`: pg_stat_statements,
/// which itself costs a little, so never in a run whose rates are
/// reported).
fn statements() -> bool {
    std::env::var_os("TOPDOG_BENCH_STATEMENTS").is_some()
}

/// Runs `accepts` with PostgreSQL's statement statistics reset before and
/// printed after, per accept.
async fn count_statements(url: &str, scale: Scale, accepts: impl std::future::Future<Output = Accepts>) -> Accepts {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await.expect("pg_stat_statements");
    client.batch_execute("SELECT pg_stat_statements_reset()").await.expect("reset");
    let accepts = accepts.await;
    let n = (accepts.rate * scale.seconds as f64).max(1.0);
    let rows = client
        .query(
            "SELECT calls, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) \
             FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 30",
            &[],
        )
        .await
        .expect("statements");
    eprintln!("{:>10} {:>12}  statement", "calls/acc", "exec ms/acc");
    for row in rows {
        let (calls, ms, query): (i64, f64, String) = (row.get(0), row.get(1), row.get(2));
        eprintln!("{:>10.2} {:>12.4}  {query}", calls as f64 / n, ms / n);
    }
    accepts
}
