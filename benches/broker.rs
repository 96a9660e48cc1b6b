//! Broker benchmark: the appliance's MQTT/TLS path (our gateway, then the
//! embedded rumqttd) side by side with Debian's Mosquitto configured with
//! TLS and required client certificates, driven by the same client
//! (rumqttc over rustls) in the same run on the same machine:
//!
//! 1. QoS 1 throughput: `PHONES` clients each publish `PER_PHONE` messages
//!    to their own topic and receive them back (a phone may only use its
//!    own topics on the appliance, so every client is publisher and
//!    subscriber of one topic).
//! 2. Latency at a fixed rate: one client publishes `RATE` messages a
//!    second for `LATENCY_S` seconds and receives them; p50/p99.
//! 3. The appliance's own notify → phone latency (`POST /phone/notify` to a
//!    user with one phone: stored and flushed, then published) at
//!    `NOTIFY_RATE`/s for `NOTIFY_S` seconds, side by side on two
//!    appliances at once: one with a handful of phones paired, one with
//!    `PAIRED`. Before it, each appliance is left until its process is
//!    quiet (under 2% of a core for a second), so what is measured is the
//!    cost of a notify, not the store still settling the pairing burst.
//! 4. Idle phones: `IDLE` TLS clients connected and subscribed; the
//!    broker process's resident memory before and after, per connection.
//! 5. Reconnect storm (the appliance): those idle phones stay connected,
//!    reconnecting after an error as a phone app does (after 0.2–1 s);
//!    the appliance is restarted; time until every one is back.
//!
//! Steps 1 and 2 run twice: with the client leaving Nagle's algorithm on
//! (as most MQTT clients do) and with `TCP_NODELAY`. Mosquitto runs with
//! `set_tcp_nodelay true`, its best-latency setting. Step 2 runs on both
//! brokers side by side, in one-second turns, so noise on this shared
//! machine falls on both alike.
//!
//! A phone may publish only on its own phone → appliance topics, so on the
//! appliance each client echoes on its `presence` topic (which the
//! appliance also reads and drops as not JSON: a cost Mosquitto does not
//! pay), with the per-phone publish budget raised out of the way.
//!
//! Run: `cargo bench --features dev-license-key --bench broker` (needs
//! `mosquitto`, which the test script installs). Without `--bench` (as
//! `cargo test --all-targets` runs it) a quick pass of a second or two only
//! checks that every step works. Method and results: BENCHMARKS.md.

#[path = "../tests/support/appliance.rs"]
#[allow(dead_code)]
mod appliance;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAYLOAD: usize = 256;
const WINDOW: usize = 200;

/// How much to do.
#[derive(Clone, Copy)]
struct Scale {
    /// Clients in the throughput run.
    phones: usize,
    /// Messages each of them echoes.
    per_phone: usize,
    /// Messages a second in the latency runs.
    rate: u64,
    /// Seconds of each latency run.
    latency_s: u64,
    /// Notifications a second in the notify → phone run.
    notify_rate: u64,
    /// Seconds of the notify → phone run.
    notify_s: u64,
    /// Idle connections for the memory run (and the reconnect storm).
    idle: usize,
    /// Phones paired for the second notify run.
    paired: usize,
    /// How long idle connections settle before memory is read.
    settle: Duration,
}

const FULL: Scale = Scale {
    phones: 8,
    per_phone: 5_000,
    rate: 1_000,
    latency_s: 10,
    notify_rate: 100,
    notify_s: 30,
    idle: 6_000,
    paired: 10_000,
    settle: Duration::from_secs(2),
};
const QUICK: Scale = Scale {
    phones: 2,
    per_phone: 100,
    rate: 100,
    latency_s: 1,
    notify_rate: 20,
    notify_s: 1,
    idle: 16,
    paired: 24,
    settle: Duration::ZERO,
};

/// What a client needs to log in.
#[derive(Clone)]
struct Login {
    id: String,
    password: Option<String>,
    cert: String,
    key: String,
    topic: String,
}

/// Where a broker listens, the CA its certificate chains to, and whether
/// clients set `TCP_NODELAY`.
#[derive(Clone)]
struct Endpoint {
    name: &'static str,
    port: u16,
    ca: String,
    nodelay: bool,
}

/// A broker under test: where it listens, the logins it accepts, its
/// process id, and what keeps the process running.
struct Target {
    at: Endpoint,
    logins: Vec<Login>,
    pid: u32,
    _process: Box<dyn std::any::Any>,
}

impl Target {
    fn pid(&self) -> u32 {
        self.pid
    }
}

/// A child process stopped when dropped.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (at most a minute) until process `pid` uses under 2% of a core
/// for a second: a store still settling a burst of writes is quiet then.
async fn until_quiet(pid: u32) {
    for _ in 0..60 {
        let before = appliance::cpu_ticks(pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        if appliance::cpu_ticks(pid) - before <= 2 {
            return;
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn tls(ca: &str, cert: &str, key: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain = rustls_pemfile::certs(&mut cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    let key = rustls_pemfile::private_key(&mut key.as_bytes()).unwrap().unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// Connects `login` and subscribes to its topic at QoS 1.
async fn connect(target: &Endpoint, login: &Login) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(&login.id, "127.0.0.1", target.port);
    options.set_keep_alive(Duration::from_secs(60));
    options.set_max_packet_size(64 * 1024, 64 * 1024);
    options.set_inflight(100);
    if let Some(password) = &login.password {
        options.set_credentials(&login.id, password);
    }
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls(
        &target.ca,
        &login.cert,
        &login.key,
    ))));
    let (client, mut events) = AsyncClient::new(options, 1000);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(target.nodelay);
    events.set_network_options(network);
    client.subscribe(&login.topic, QoS::AtLeastOnce).await.unwrap();
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => return (client, events),
            Ok(_) => {}
            Err(e) => panic!("{}: {} could not connect: {e}", target.name, login.id),
        }
    }
}

/// Publishes `n` QoS 1 messages to its own topic and waits for all of them,
/// never more than `WINDOW` ahead of what came back: rumqttd keeps a
/// subscriber's backlog in a bounded commit log and skips what falls out of
/// it, so an unthrottled publisher would measure loss, not throughput.
async fn echo(client: AsyncClient, mut events: EventLoop, topic: String, n: usize) {
    let (received_tx, mut received_rx) = tokio::sync::watch::channel(0usize);
    let publisher = tokio::spawn(async move {
        for sent in 0..n {
            let _ = received_rx.wait_for(|got| sent < got + WINDOW).await;
            client.publish(&topic, QoS::AtLeastOnce, false, vec![b'x'; PAYLOAD]).await.unwrap();
        }
    });
    let mut got = 0;
    while got < n {
        if let Event::Incoming(Packet::Publish(_)) = events.poll().await.expect("connection") {
            got += 1;
            received_tx.send_replace(got);
        }
    }
    publisher.await.unwrap();
}

async fn throughput(at: &Endpoint, target: &Target, scale: Scale) -> f64 {
    let mut clients = Vec::new();
    for login in &target.logins[..scale.phones] {
        let (client, events) = connect(at, login).await;
        clients.push((client, events, login.topic.clone()));
    }
    let start = Instant::now();
    let tasks: Vec<_> = clients.into_iter().map(|(c, e, t)| tokio::spawn(echo(c, e, t, scale.per_phone))).collect();
    for task in tasks {
        task.await.unwrap();
    }
    (scale.phones * scale.per_phone) as f64 / start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// One second of the latency run on a connected client: `scale.rate`
/// messages at a steady pace, each timed from publish to receipt.
async fn latency_slice(client: &AsyncClient, events: &mut EventLoop, topic: &str, scale: Scale) -> Vec<Duration> {
    let base = Instant::now();
    let total = scale.rate as usize;
    let (client, topic) = (client.clone(), topic.to_owned());
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_nanos(1_000_000_000 / scale.rate));
        for _ in 0..total {
            ticks.tick().await;
            let mut payload = (base.elapsed().as_nanos() as u64).to_be_bytes().to_vec();
            payload.resize(PAYLOAD, b'x');
            client.publish(&topic, QoS::AtLeastOnce, false, payload).await.unwrap();
        }
    });
    let mut samples = Vec::with_capacity(total);
    while samples.len() < total {
        if let Event::Incoming(Packet::Publish(p)) = events.poll().await.expect("connection") {
            let sent = u64::from_be_bytes(p.payload[..8].try_into().unwrap());
            samples.push(base.elapsed() - Duration::from_nanos(sent));
        }
    }
    samples
}

/// The latency run on both brokers side by side: one-second slices taken
/// in turn, `scale.latency_s` of each, so the machine's noise falls on
/// both alike; p50 and p99 of each.
async fn latency(targets: [&Target; 2], nodelay: bool, scale: Scale) -> [(Duration, Duration); 2] {
    let mut clients = Vec::new();
    for target in targets {
        let at = Endpoint { nodelay, ..target.at.clone() };
        let login = &target.logins[0];
        let (client, events) = connect(&at, login).await;
        clients.push((client, events, login.topic.clone(), Vec::new()));
    }
    for _ in 0..scale.latency_s {
        for (client, events, topic, samples) in &mut clients {
            samples.extend(latency_slice(client, events, topic, scale).await);
        }
    }
    let mut results = [(Duration::ZERO, Duration::ZERO); 2];
    for (result, (_, _, _, mut samples)) in results.iter_mut().zip(clients) {
        samples.sort();
        *result = (percentile(&samples, 0.50), percentile(&samples, 0.99));
    }
    results
}

/// Idle clients kept connected: each reconnects after an error as a phone
/// app does; `back` counts the clients that have connected again since.
struct Idle {
    pollers: tokio::task::JoinSet<()>,
    back: Arc<AtomicUsize>,
}

async fn keep_connected(client: AsyncClient, mut events: EventLoop, back: Arc<AtomicUsize>) {
    let _client = client;
    let mut counted = false;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) if !counted => {
                counted = true;
                back.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(200 + rand::random::<u64>() % 800)).await,
        }
    }
}

/// Connects `scale.idle` subscribed clients (64 at a time); them, and the
/// resident KiB per connection with the RSS before and after.
async fn idle_memory(target: &Target, scale: Scale) -> (Idle, f64, u64, u64) {
    let before = rss_kib(target.pid());
    let idle = Idle { pollers: tokio::task::JoinSet::new(), back: Arc::default() };
    let mut idle = idle;
    let logins: Vec<Login> = target
        .logins
        .iter()
        .cycle()
        .take(scale.idle)
        .cloned()
        .enumerate()
        .map(|(i, mut l)| {
            if l.password.is_none() {
                l.id = format!("idle-{i}");
            }
            l
        })
        .collect();
    for batch in logins.chunks(64) {
        let mut connecting = tokio::task::JoinSet::new();
        for login in batch {
            let (at, login) = (target.at.clone(), login.clone());
            connecting.spawn(async move { connect(&at, &login).await });
        }
        while let Some(done) = connecting.join_next().await {
            let (client, events) = done.unwrap();
            idle.pollers.spawn(keep_connected(client, events, idle.back.clone()));
        }
    }
    tokio::time::sleep(scale.settle).await;
    let after = rss_kib(target.pid());
    (idle, (after.saturating_sub(before)) as f64 / scale.idle as f64, before, after)
}

/// Restarts the appliance under `idle`'s phones; how long until every one
/// of them was back, counted from the stop and from the new start's ready.
async fn reconnect_storm(bench: &Bench, idle: &Idle, n: usize) -> (Duration, Duration, usize) {
    let stopped = Instant::now();
    let app = bench.app.clone();
    let ready = tokio::task::spawn_blocking(move || app.restart()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while idle.back.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = Instant::now();
    (done - stopped, done.saturating_duration_since(ready), idle.back.load(Ordering::Relaxed))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Mosquitto with TLS and required client certificates, one certificate
/// for every client (client ids differ).
fn mosquitto(dir: &Path, scale: Scale) -> Target {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "bench CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params.distinguished_name.push(rcgen::DnType::CommonName, "bench");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    for (name, text) in
        [("ca.pem", ca_cert.pem()), ("server.pem", server.pem()), ("server-key.pem", server_key.serialize_pem())]
    {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let port = free_port();
    let conf = format!(
        "listener {port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server-key.pem\n\
         require_certificate true\nallow_anonymous true\npersistence false\nmax_inflight_messages 100\n\
         max_queued_messages 10000\nset_tcp_nodelay true\nlog_dest none\n",
        d = dir.display()
    );
    std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is needed for the benchmark (apt-get install mosquitto)");
    wait_for_port(port);
    let logins = (0..scale.phones)
        .map(|i| Login {
            id: format!("phone-{i}"),
            password: None,
            cert: client.pem(),
            key: client_key.serialize_pem(),
            topic: format!("bench/phone-{i}"),
        })
        .collect();
    let pid = child.id();
    Target {
        at: Endpoint { name: "mosquitto", port, ca: ca_cert.pem(), nodelay: false },
        logins,
        pid,
        _process: Box::new(Stopped(child)),
    }
}

/// The appliance under test, the broker target it makes, and the one phone
/// of user `solo` (subscribed to its notifications).
struct Bench {
    target: Target,
    app: Arc<appliance::Appliance>,
    solo: Login,
}

impl Bench {
    /// Pairs phones of user `bench` until there are `n`.
    async fn pair_up_to(&mut self, n: usize) {
        let more = pair_phones(&self.app, self.target.logins.len()..n).await;
        self.target.logins.extend(more.iter().map(|p| login(p, "presence")));
    }
}

/// Pairs `device` for `user`; the accept answer.
async fn pair_one(app: &appliance::Appliance, user: &str, device: &str) -> Value {
    let sms = json!({"phone_number": "+14155552671", "user_id": user, "user_name": user});
    let (status, invite) = app.request("/phone/pairing/send-sms", Some(&sms), true).await;
    assert_eq!(status, 200, "invite: {invite}");
    let accept = json!({"invite_code": invite["invite_code"], "device_id": device,
        "device_name": "B", "device_type": "android", "os_version": "1", "app_version": "1"});
    let (status, answer) = app.request("/phone/pairing/accept-invite", Some(&accept), false).await;
    assert_eq!(status, 200, "accept: {answer}");
    answer
}

/// Pairs phones `phone-{i}` of user `bench` (one seat), 8 at a time.
async fn pair_phones(app: &Arc<appliance::Appliance>, ids: std::ops::Range<usize>) -> Vec<Value> {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let (app, ids) = (app.clone(), ids.clone());
        tasks.spawn(async move {
            let mut paired = Vec::new();
            for i in ids.skip(t).step_by(8) {
                paired.push((i, pair_one(&app, "bench", &format!("phone-{i}")).await));
            }
            paired
        });
    }
    let mut all = Vec::new();
    while let Some(part) = tasks.join_next().await {
        all.extend(part.unwrap());
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, p)| p).collect()
}

/// The login of a paired phone, on its topic for message type `kind`.
fn login(paired: &Value, kind: &str) -> Login {
    Login {
        id: paired["device_id"].as_str().unwrap().to_owned(),
        password: Some(paired["jwt_token"].as_str().unwrap().to_owned()),
        cert: paired["mqtt_client_cert"].as_str().unwrap().to_owned(),
        key: paired["mqtt_client_key"].as_str().unwrap().to_owned(),
        topic: format!("{}/{kind}", paired["mqtt_topic_prefix"].as_str().unwrap()),
    }
}

async fn appliance(dir: &Path, scale: Scale) -> Bench {
    let args = ["--mqtt-max-per-ip", "100000", "--mqtt-publish-rate", "1000000"];
    let limits = ["--rate-invites-per-minute", "100000000", "--rate-accepts-per-minute", "100000000"];
    let app = Arc::new(appliance::Appliance::start(dir, &[&args[..], &limits[..]].concat(), 2).await);
    let solo = login(&pair_one(&app, "solo", "solo-phone").await, "notification");
    let paired = pair_phones(&app, 0..scale.phones).await;
    let ca = paired[0]["mqtt_ca_cert"].as_str().unwrap().to_owned();
    let logins = paired.iter().map(|p| login(p, "presence")).collect();
    let at = Endpoint { name: "topdog", port: app.ready.mqtt_port(), ca, nodelay: false };
    let target = Target { at, logins, pid: app.pid(), _process: Box::new(app.clone()) };
    Bench { target, app, solo }
}

/// `POST /phone/notify` at `NOTIFY_RATE`/s to user `solo` (one phone);
/// p50/p99 until the phone has it.
async fn notify_latency(bench: &Bench, scale: Scale) -> (Duration, Duration) {
    let (_client, mut events) = connect(&bench.target.at, &bench.solo).await;
    let total = (scale.notify_rate * scale.notify_s) as usize;
    let base = Instant::now();
    let appliance = bench.app.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_nanos(1_000_000_000 / scale.notify_rate));
        for _ in 0..total {
            ticks.tick().await;
            let sent = base.elapsed().as_nanos().to_string();
            let body = json!({"user_id": "solo", "title": sent});
            let appliance = appliance.clone();
            tokio::spawn(async move {
                let (status, answer) = appliance.request("/phone/notify", Some(&body), true).await;
                assert_eq!(status, 200, "notify: {answer}");
            });
        }
    });
    let mut samples = Vec::with_capacity(total);
    while samples.len() < total {
        if let Event::Incoming(Packet::Publish(p)) = events.poll().await.expect("connection") {
            let message: Value = serde_json::from_slice(&p.payload).unwrap();
            let sent: u64 = message["title"].as_str().unwrap().parse().unwrap();
            samples.push(base.elapsed() - Duration::from_nanos(sent));
        }
    }
    samples.sort();
    (percentile(&samples, 0.50), percentile(&samples, 0.99))
}

/// One broker's figures: throughput and latency with Nagle on
/// (`[0]`) and with `TCP_NODELAY` (`[1]`), and idle memory.
#[derive(Default)]
struct Report {
    throughput: [f64; 2],
    p50: [Duration; 2],
    p99: [Duration; 2],
    per_conn_kib: f64,
    rss: (u64, u64),
}

/// Throughput and latency of both brokers, with Nagle on and with
/// `TCP_NODELAY` in the client: throughput one broker after the other,
/// latency side by side. Idle memory is measured apart.
async fn measure(targets: [&Target; 2], scale: Scale) -> [Report; 2] {
    let mut reports: [Report; 2] = Default::default();
    for (i, nodelay) in [false, true].into_iter().enumerate() {
        for (report, target) in reports.iter_mut().zip(targets) {
            report.throughput[i] = throughput(&Endpoint { nodelay, ..target.at.clone() }, target, scale).await;
        }
        for (report, (p50, p99)) in reports.iter_mut().zip(latency(targets, nodelay, scale).await) {
            (report.p50[i], report.p99[i]) = (p50, p99);
        }
    }
    reports
}

/// Connects `target`'s idle phones and notes its memory in `report`.
async fn measure_idle(target: &Target, report: &mut Report, scale: Scale) -> Idle {
    let (idle, per_conn_kib, before, after) = idle_memory(target, scale).await;
    (report.per_conn_kib, report.rss) = (per_conn_kib, (before, after));
    idle
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print(name: &str, r: &Report, scale: Scale) {
    for (i, client) in ["Nagle on", "TCP_NODELAY"].into_iter().enumerate() {
        println!(
            "{name:10} client {client:11}: QoS1 {:>8.0} msg/s | p50 {:>6.2} ms p99 {:>6.2} ms at {}/s",
            r.throughput[i],
            ms(r.p50[i]),
            ms(r.p99[i]),
            scale.rate
        );
    }
    let at_10k = r.rss.0 as f64 + r.per_conn_kib * 10_000.0;
    println!(
        "{name:10} {} idle: RSS {} -> {} KiB = {:.1} KiB/conn (10,000 phones: ~{:.0} MiB)",
        scale.idle,
        r.rss.0,
        r.rss.1,
        r.per_conn_kib,
        at_10k / 1024.0
    );
}

#[tokio::main]
async fn main() {
    let scale = if std::env::args().any(|a| a == "--bench") { FULL } else { QUICK };
    let scratch = tempfile::tempdir().expect("temp dir");
    let mosq_dir = scratch.path().join("mosquitto");
    std::fs::create_dir_all(&mosq_dir).unwrap();
    let few_dir = scratch.path().join("few");
    std::fs::create_dir_all(&few_dir).unwrap();
    let few_bench = appliance(&few_dir, scale).await;
    let mut bench = appliance(scratch.path(), scale).await;
    bench.pair_up_to(scale.paired.max(scale.idle)).await;
    let (few, many) = (few_bench.target.logins.len() + 1, bench.target.logins.len() + 1);
    tokio::join!(until_quiet(few_bench.target.pid()), until_quiet(bench.target.pid()));
    let ((few50, few99), (many50, many99)) =
        tokio::join!(notify_latency(&few_bench, scale), notify_latency(&bench, scale));
    drop(few_bench);
    let mosq = mosquitto(&mosq_dir, scale);
    let [mut ours, mut theirs] = measure([&bench.target, &mosq], scale).await;
    let mut idle = measure_idle(&bench.target, &mut ours, scale).await;
    let (from_stop, from_ready, back) = reconnect_storm(&bench, &idle, scale.idle).await;
    idle.pollers.abort_all();
    drop(bench);
    let mut idle = measure_idle(&mosq, &mut theirs, scale).await;
    idle.pollers.abort_all();
    drop(mosq);
    println!(
        "{} clients x {} QoS 1 messages of {PAYLOAD} B, each to its own topic and back",
        scale.phones, scale.per_phone
    );
    print("topdog", &ours, scale);
    print("mosquitto", &theirs, scale);
    for (i, client) in ["Nagle on", "TCP_NODELAY"].into_iter().enumerate() {
        println!(
            "ratios topdog/mosquitto, client {client}: throughput {:.2} (goal >= 3), p99 {:.2} (goal <= 1)",
            ours.throughput[i] / theirs.throughput[i],
            ours.p99[i].as_secs_f64() / theirs.p99[i].as_secs_f64(),
        );
    }
    println!("memory/conn topdog/mosquitto {:.2} (goal <= 2.4)", ours.per_conn_kib / theirs.per_conn_kib);
    println!(
        "reconnect storm: {back} of {} phones back {:.1} s after the stop, {:.1} s after the new start was ready",
        scale.idle,
        from_stop.as_secs_f64(),
        from_ready.as_secs_f64()
    );
    println!(
        "notify -> phone at {}/s: {few} paired p50 {:.2} ms p99 {:.2} ms; {many} paired p50 {:.2} ms p99 {:.2} ms (p99 ratio {:.2}, goal <= 1.2)",
        scale.notify_rate,
        ms(few50),
        ms(few99),
        ms(many50),
        ms(many99),
        many99.as_secs_f64() / few99.as_secs_f64()
    );
    assert_eq!(back, scale.idle, "every phone came back after the restart");
}
