//! The one helper every test uses: `spawn_app` starts an appliance with a
//! fresh data directory on ephemeral ports (inside the test process, or the
//! real binary as a child process when the test needs one: see `running`),
//! waits until it listens, and hands back an HTTPS client that trusts the
//! appliance CA, the admin token and everything it prints.

#[path = "../support/ready.rs"]
#[allow(dead_code)]
mod ready;

use crate::running::{self, Running};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How long to wait for the appliance to print something.
const WAIT: Duration = Duration::from_secs(60);

/// How a test wants its appliance.
#[derive(Default, Clone)]
pub struct Options {
    /// Extra command-line flags for `serve`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Start without a license (one seat); by default a 1,000-seat
    /// development license is activated so tests can pair many users.
    pub unlicensed: bool,
    /// Leave the SMS provider to the appliance's default (otherwise the
    /// console provider is named, so it prints pairing links).
    pub default_sms: bool,
    /// Run the real binary as a child process (a test that signals or kills
    /// it, or reads its log); so does any test that sets `env`.
    pub process: bool,
    /// Let the appliance make its own JWT signing key (by default a fresh
    /// data directory gets a copy of one made once per test run: making a
    /// 2048-bit RSA key is most of an appliance's start-up time).
    pub fresh_keys: bool,
}

impl Options {
    /// Adds a flag (and value).
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_owned());
        self
    }
    /// Leaves the SMS provider to the appliance's default.
    pub fn default_sms(mut self) -> Self {
        self.default_sms = true;
        self
    }
    /// Starts without a license.
    pub fn unlicensed(mut self) -> Self {
        self.unlicensed = true;
        self
    }
    /// Runs the real binary as a child process.
    pub fn process(mut self) -> Self {
        self.process = true;
        self
    }
    /// Lets the appliance make its own JWT signing key.
    pub fn fresh_keys(mut self) -> Self {
        self.fresh_keys = true;
        self
    }
    fn needs_process(&self) -> bool {
        self.process || !self.env.is_empty()
    }
    /// Adds an environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }
}

/// A running appliance.
pub struct TestApp {
    /// First, so dropped first: the appliance ends before its directory goes.
    running: Running,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub port: u16,
    pub mqtt_port: u16,
    pub admin_token: String,
    pub client: reqwest::Client,
    options: Options,
    lines: Arc<Mutex<Vec<String>>>,
    seen: watch::Receiver<usize>,
}

/// Starts an appliance with the test defaults (generous rate limits).
pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

/// Starts the real binary as a child process, with the test defaults.
pub async fn spawn_process() -> TestApp {
    spawn_with(Options::default().process()).await
}

/// Starts an appliance with `options` (on a database of its own when the
/// tests run on PostgreSQL: see `postgres`).
pub async fn spawn_with(mut options: Options) -> TestApp {
    if crate::postgres::is_backend() && !options.args.iter().any(|a| a == "--database-url") {
        options = options.arg("--database-url").arg(&crate::postgres::fresh_database().await);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    if !options.fresh_keys {
        seed_signing_key(&data_dir(dir.path()));
    }
    let unlicensed = options.unlicensed;
    let app = start(dir, options, None).await;
    if !unlicensed {
        let (status, body) = app.admin_post("/admin/license", json!({"license_key": test_license()})).await;
        assert_eq!(status, 200, "activating the test license: {body}");
    }
    app
}

/// Starts an appliance on an existing `dir` (its `data` folder), whose
/// admin token is `token`.
pub async fn start_existing(dir: tempfile::TempDir, token: &str) -> TestApp {
    start(dir, Options::default(), Some(token.to_owned())).await
}

/// Starts an appliance with `options` on `dir`, prepared beforehand (keys
/// imported into its `data` folder), whose admin token is `token`.
pub async fn start_in(dir: tempfile::TempDir, options: Options, token: &str) -> TestApp {
    start(dir, options, Some(token.to_owned())).await
}

/// A 1,000-seat license signed with the development key.
pub fn test_license() -> String {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let dev_key = Path::new(env!("CARGO_MANIFEST_DIR")).join("license-keys/dev-license-key.private");
        let out = Command::new(binary())
            .args(["license", "issue", "--customer", "Test", "--seats", "1000", "--signing-key"])
            .arg(dev_key)
            .output()
            .expect("issue");
        String::from_utf8(out.stdout).expect("key").trim().to_owned()
    })
    .clone()
}

fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// Puts a copy of the run's one test JWT signing key into a new data
/// directory (made as the appliance makes it: 0700, the key 0600).
fn seed_signing_key(data: &Path) {
    use std::os::unix::fs::PermissionsExt;
    static KEY: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, key) = KEY.get_or_init(|| {
        let scratch = tempfile::tempdir().expect("temp dir");
        let dir = topdog::store::datadir::DataDir::open(scratch.path()).expect("scratch data directory");
        let ttl = Duration::from_secs(60);
        topdog::auth::tokens::Tokens::load_or_create(&dir, ttl, topdog::clock::Clock::system()).expect("a key");
        let key = scratch.path().join("jwt-signing-key.pem");
        (scratch, key)
    });
    std::fs::create_dir_all(data).expect("data directory");
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).expect("0700");
    let copy = data.join("jwt-signing-key.pem");
    std::fs::copy(key, &copy).expect("the test signing key");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).expect("0600");
}

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_topdog")
}

async fn start(dir: tempfile::TempDir, options: Options, known_token: Option<String>) -> TestApp {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (tx, seen) = watch::channel(0usize);
    let sink = Sink { lines: lines.clone(), seen: Arc::new(tx) };
    let args = serve_args(dir.path(), &options);
    let (running, api_url, mqtt_url) = match options.needs_process() {
        true => start_process(dir.path(), args, &options, sink),
        false => start_in_process(args, sink).await,
    };
    let mut app = TestApp {
        port: ready::port_of(&api_url),
        mqtt_port: ready::port_of(&mqtt_url),
        base: api_url,
        admin_token: known_token.unwrap_or_default(),
        client: reqwest::Client::new(),
        running,
        options,
        lines,
        seen,
        dir,
    };
    app.wait_line(|l| l.starts_with("Next: pair a phone")).await;
    if let Some(i) = app.output().iter().position(|l| l.starts_with("Admin token (shown only")) {
        app.admin_token = app.output()[i + 1].trim().to_owned();
    }
    if let Some((_, token)) = app.options.env.iter().find(|(k, _)| k == "ADMIN_TOKEN") {
        app.admin_token = token.clone();
    }
    app.client = client_trusting(&app.ca_file());
    app
}

/// Collects what an appliance prints, line by line, and wakes those
/// waiting for a line.
#[derive(Clone)]
struct Sink {
    lines: Arc<Mutex<Vec<String>>>,
    seen: Arc<watch::Sender<usize>>,
}

impl Sink {
    fn push(&self, line: &str) {
        self.lines.lock().unwrap().push(line.to_owned());
        self.seen.send_modify(|n| *n += 1);
    }

    /// Wakes the waiters once more (the output ended).
    fn close(&self) {
        self.seen.send_modify(|n| *n += 1);
    }
}

/// `topdog serve`'s flags for a test appliance in `dir`.
fn serve_args(dir: &Path, options: &Options) -> Vec<String> {
    let mut args = vec!["--data-dir".to_owned(), data_dir(dir).to_string_lossy().into_owned()];
    args.extend(default_addrs(&options.args).into_iter().map(str::to_owned));
    args.extend(generous_limits(&options.args).into_iter().map(str::to_owned));
    args.extend(console_sms(options).into_iter().map(str::to_owned));
    args.extend(options.args.iter().cloned());
    args
}

/// Runs the appliance inside the test process; it, its API and MQTT URLs.
async fn start_in_process(args: Vec<String>, sink: Sink) -> (Running, String, String) {
    let console = sink.clone();
    let (embedded, info) = running::embed(args, Arc::new(move |line: &str| console.push(line))).await;
    topdog::cli::banner::render(&info).lines().for_each(|line| sink.push(line));
    (Running::InProcess(embedded), info.api_url, info.mqtt_url)
}

/// Runs the real binary as a child process, its standard error into
/// `stderr.log` in `dir`; it, its API and MQTT URLs.
fn start_process(dir: &Path, args: Vec<String>, options: &Options, sink: Sink) -> (Running, String, String) {
    let log = dir.join("stderr.log");
    let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log");
    let ready_file = dir.join("ready.json");
    let _ = std::fs::remove_file(&ready_file);
    let mut command = Command::new(binary());
    command
        .arg("serve")
        .arg("--ready-file")
        .arg(&ready_file)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .envs(options.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    let mut child = command.spawn().expect("start topdog");
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.push(&line);
        }
        sink.close();
    });
    let ready = ready::wait_ready(&ready_file, &mut child, Duration::from_secs(60), Some(&log));
    (Running::Process(child), ready.api_url, ready.mqtt_url)
}

/// Ephemeral loopback ports, unless a test names its own.
fn default_addrs(args: &[String]) -> Vec<&'static str> {
    let mut addrs = Vec::new();
    for flag in ["--http-addr", "--mqtt-addr"] {
        if !args.iter().any(|a| a == flag) {
            addrs.extend([flag, "127.0.0.1:0"]);
        }
    }
    addrs
}

/// The console SMS provider chosen by name (so it prints pairing links),
/// unless a test picks a provider itself.
fn console_sms(options: &Options) -> Vec<&'static str> {
    let env_picks = options.env.iter().any(|(k, _)| k == "TOPDOG_SMS_PROVIDER" || k == "TWILIO_ACCOUNT_SID");
    if options.default_sms || env_picks || options.args.iter().any(|a| a == "--sms-provider") {
        return Vec::new();
    }
    vec!["--sms-provider", "console"]
}

/// Rate limits high enough for tests, unless a test sets its own.
fn generous_limits(args: &[String]) -> Vec<&'static str> {
    let mut extra = Vec::new();
    for flag in ["--rate-invites-per-minute", "--rate-accepts-per-minute"] {
        if !args.iter().any(|a| a == flag) {
            extra.extend([flag, "10000"]);
        }
    }
    extra
}

/// A reqwest client that trusts the CA in `ca_file`. Its idle connections
/// are let go well before the appliance closes an idle keep-alive
/// connection (its header timeout, 10 s), so a request is never sent on a
/// connection the appliance is closing at that moment.
pub fn client_trusting(ca_file: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca_file).expect("ca.pem");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA"))
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

impl TestApp {
    /// The appliance's process id (to signal it; the soak test reads its memory).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.running.pid()
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        data_dir(self.dir.path())
    }

    /// The appliance CA.
    pub fn ca_file(&self) -> PathBuf {
        self.data_dir().join("ca.pem")
    }

    /// Everything printed on stdout so far.
    pub fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The log (stderr) so far (an appliance run as a process).
    pub fn log(&self) -> String {
        assert!(matches!(self.running, Running::Process(_)), "reading the log needs Options::process()");
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Waits for a stdout line matching `pred` (printed since start).
    pub async fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let lines = self.lines.clone();
        let found = |_: &usize| lines.lock().unwrap().iter().any(|l| pred(l));
        tokio::time::timeout(WAIT, self.seen.wait_for(found))
            .await
            .expect("timed out waiting for output")
            .expect("output");
        let all = self.lines.lock().unwrap();
        all.iter().find(|l| pred(l)).cloned().expect("line")
    }

    /// Waits for the `n`-th console SMS (1-based) and returns its message.
    pub async fn console_sms(&mut self, n: usize) -> String {
        let count = |lines: &[String]| lines.iter().filter(|l| l.starts_with("Message: ")).count();
        let lines = self.lines.clone();
        let enough = |_: &usize| count(&lines.lock().unwrap()) >= n;
        tokio::time::timeout(WAIT, self.seen.wait_for(enough))
            .await
            .expect("timed out waiting for SMS")
            .expect("output");
        let all = self.lines.lock().unwrap();
        all.iter().filter(|l| l.starts_with("Message: ")).nth(n - 1).cloned().expect("sms")
    }

    /// A full URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An admin request.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).header("x-admin-token", &self.admin_token)
    }

    /// POSTs JSON as admin and returns status and body.
    pub async fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.admin(reqwest::Method::POST, path).json(&body)).await
    }

    /// Makes a scoped API token; the token.
    pub async fn api_token(&self, name: &str, scopes: &[&str], users: &[&str]) -> String {
        let body = json!({"name": name, "scopes": scopes, "users": users});
        let (status, made) = self.admin_post("/admin/tokens", body).await;
        assert_eq!(status, 201, "making token {name}: {made}");
        made["token"].as_str().expect("token").to_owned()
    }

    /// A request with an API token (`Authorization: Bearer`).
    pub fn with_token(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(token)
    }

    /// GETs as admin.
    pub async fn admin_get(&self, path: &str) -> (u16, Value) {
        send(self.admin(reqwest::Method::GET, path)).await
    }

    /// GETs with no credentials.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.client.get(self.url(path))).await
    }

    /// GETs with a device token.
    pub async fn device_get(&self, path: &str, token: &str) -> (u16, Value) {
        send(self.client.get(self.url(path)).bearer_auth(token)).await
    }

    /// POSTs JSON with no credentials.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.client.post(self.url(path)).json(&body)).await
    }

    /// Sends an SMS invite; returns the answer.
    /// Moves the appliance's clock by `seconds` (a test build's admin route).
    pub async fn shift_clock(&self, seconds: i64) {
        let (status, body) = self.admin_post("/admin/test/clock", json!({"shift_s": seconds})).await;
        assert_eq!(status, 200, "shifting the clock: {body}");
    }

    pub async fn send_sms(&self, phone: &str, user: &str) -> (u16, Value) {
        self.admin_post(
            "/phone/pairing/send-sms",
            json!({"phone_number": phone, "user_id": user, "user_name": "Test User"}),
        )
        .await
    }

    /// Accepts `code` as device `device_id`.
    pub async fn accept(&self, code: &str, device_id: &str) -> (u16, Value) {
        self.post("/phone/pairing/accept-invite", accept_body(code, device_id, None)).await
    }

    /// Invites `user` by SMS and pairs `device_id`; the whole accept answer.
    pub async fn pair_full(&mut self, user: &str, device_id: &str) -> Value {
        let (status, invite) = self.send_sms("+14155552671", user).await;
        assert_eq!(status, 200, "{invite}");
        let (status, accepted) = self.accept(invite["invite_code"].as_str().unwrap(), device_id).await;
        assert_eq!(status, 200, "{accepted}");
        accepted
    }

    /// Invites `user` by SMS and pairs `device_id`; returns the device token.
    pub async fn pair(&mut self, user: &str, device_id: &str) -> String {
        let (status, invite) = self.send_sms("+14155552671", user).await;
        assert_eq!(status, 200, "{invite}");
        let (status, accepted) = self.accept(invite["invite_code"].as_str().unwrap(), device_id).await;
        assert_eq!(status, 200, "{accepted}");
        accepted["jwt_token"].as_str().unwrap().to_owned()
    }

    /// The audit log's lines, parsed, without the test license's
    /// activation that `spawn_with` performs.
    pub fn audit(&self) -> Vec<Value> {
        let text = match self.database_url() {
            Some(url) => {
                crate::postgres::query_blocking(url, "SELECT value #>> '{}' FROM audit ORDER BY key").join("\n")
            }
            None => std::fs::read_to_string(self.data_dir().join("audit.jsonl")).unwrap_or_default(),
        };
        let mut lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("audit line")).collect();
        if !self.options.unlicensed && lines.first().is_some_and(|e| e["action"] == "license.activate") {
            lines.remove(0);
        }
        lines
    }

    /// The PostgreSQL database this appliance keeps its records in, if any.
    pub fn database_url(&self) -> Option<&str> {
        let args = &self.options.args;
        args.iter().position(|a| a == "--database-url").and_then(|i| args.get(i + 1)).map(String::as_str)
    }

    /// `topdog audit verify` of this appliance's audit log.
    pub fn audit_verify(&self) -> std::process::Output {
        let mut verify = Command::new(binary());
        verify.args(["audit", "verify", "--data-dir"]).arg(self.data_dir());
        if let Some(url) = self.database_url() {
            verify.args(["--database-url", url]);
        }
        verify.output().expect("topdog audit verify")
    }

    /// Replaces the first `from` in the audit log's entries by `to`, as an
    /// intruder editing it would.
    pub fn tamper_with_audit(&self, from: &str, to: &str) {
        match self.database_url() {
            Some(url) => {
                let sql = format!(
                    "UPDATE audit SET value = to_json(replace(value #>> '{{}}', '{from}', '{to}')) \
                     WHERE key = (SELECT min(key) FROM audit WHERE value::text LIKE '%{from}%')"
                );
                crate::postgres::query_blocking(url, &sql);
            }
            None => {
                let path = self.data_dir().join("audit.jsonl");
                let text = std::fs::read_to_string(&path).expect("audit log");
                std::fs::write(path, text.replacen(from, to, 1)).expect("audit log");
            }
        }
    }

    /// Stops the appliance (a process with SIGTERM) and waits for it; its
    /// exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.running.stop()
    }

    /// Kills the process with SIGKILL.
    pub fn kill9(&mut self) {
        let child = self.running.child();
        running::signal(child, "KILL");
        let _ = child.wait();
    }

    /// Stops (SIGTERM) and starts again on the same data directory.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|o| o).await
    }

    /// Stops (SIGTERM) and starts again with changed options.
    pub async fn restart_with(mut self, change: impl FnOnce(Options) -> Options) -> TestApp {
        let status = self.stop();
        assert!(status.success(), "appliance exited with {status}");
        self.start_again(change).await
    }

    /// Starts again on the same data directory after a stop or kill.
    pub async fn start_again(mut self, change: impl FnOnce(Options) -> Options) -> TestApp {
        self.running.end();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("dir"));
        let options = change(self.options.clone());
        start(dir, options, Some(self.admin_token.clone())).await
    }
}

/// Asks `probe` every 50 ms until it answers `Ok`, for up to 20 s, for
/// state the appliance keeps but announces nowhere a test can wait on
/// (metrics, receipts, the audit log); panics with the last `Err`.
pub async fn eventually<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match probe().await {
            Ok(found) => return found,
            Err(why) if tokio::time::Instant::now() >= deadline => panic!("never: {why}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Sends a request; status and JSON body (Null when not JSON).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// An accept-invite body.
pub fn accept_body(code: &str, device_id: &str, otp: Option<&str>) -> Value {
    let mut body = json!({
        "invite_code": code,
        "device_id": device_id,
        "device_name": "Test Phone",
        "device_type": "android",
        "os_version": "14",
        "app_version": "1.2.3",
    });
    if let Some(otp) = otp {
        body["otp"] = json!(otp);
    }
    body
}

/// The invite code inside a pairing link in `text`.
pub fn code_in(text: &str) -> String {
    let start = text.find("code=").expect("code= in text") + 5;
    text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}
