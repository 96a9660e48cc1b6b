//! The appliance binary in its own process, for the benchmarks: a fresh
//! data directory, ephemeral ports, a known admin token, a development
//! licence with the seats asked for, and a client that trusts its CA. It
//! starts through the ready file, as scripts do; it can be restarted on the
//! same ports (SIGTERM, then a new start); dropping it stops it. It logs
//! warnings to the benchmark's stderr (`BENCH_LOG` sets another filter,
//! e.g. `BENCH_LOG=info,topdog::store=debug`).

#[path = "ready.rs"]
mod ready;

pub use ready::Ready;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// A running appliance.
pub struct Appliance {
    child: Mutex<Child>,
    pub ready: Ready,
    pub token: String,
    pub client: reqwest::Client,
    dir: PathBuf,
    args: Vec<String>,
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Starts `topdog serve` on `addrs` (HTTPS, MQTT) and waits until it is ready.
fn spawn(dir: &Path, addrs: [&str; 2], args: &[String], token: &str) -> (Child, Ready) {
    let ready_file = dir.join("ready.json");
    let _ = std::fs::remove_file(&ready_file);
    let mut child = Command::new(env!("CARGO_BIN_EXE_topdog"))
        .args(["serve", "--http-addr", addrs[0], "--mqtt-addr", addrs[1], "--data-dir"])
        .arg(dir.join("data"))
        .arg("--ready-file")
        .arg(&ready_file)
        .args(args)
        .env("ADMIN_TOKEN", token)
        .env("RUST_LOG", std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::null())
        .spawn()
        .expect("start topdog");
    // Its standard error is the benchmark's own: a failure shows there.
    let ready = ready::wait_ready(&ready_file, &mut child, Duration::from_secs(60), None);
    (child, ready)
}

impl Appliance {
    /// Starts the appliance in `dir` with `args` and activates a licence of
    /// `seats` (signed with the development key: build with
    /// `--features dev-license-key`).
    pub async fn start(dir: &Path, args: &[&str], seats: u32) -> Appliance {
        let token = format!("bench-admin-{:032x}", rand::random::<u128>());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (child, ready) = spawn(dir, ["127.0.0.1:0", "127.0.0.1:0"], &args, &token);
        let pem = std::fs::read(&ready.ca_file).expect("the appliance CA");
        let ca = reqwest::Certificate::from_pem(&pem).expect("a PEM CA");
        // Idle connections are let go before the appliance's 10 s header
        // timeout closes them, or a request could race that close.
        let client = reqwest::Client::builder().add_root_certificate(ca).pool_idle_timeout(Duration::from_secs(5));
        let client = client.build().expect("client");
        let app = Appliance { child: Mutex::new(child), ready, token, client, dir: dir.to_owned(), args };
        app.license(seats).await;
        app
    }

    /// Starts another node of the appliance `first` (sharing its database:
    /// `args` name it) in `dir`, with `first`'s keys (`topdog keys export`,
    /// then `import`) and admin token; the licence is the shared one.
    pub async fn start_node(first: &Appliance, dir: &Path, args: &[&str]) -> Appliance {
        let keys = dir.join("keys.json");
        let topdog = |args: &[&std::ffi::OsStr]| {
            let status = Command::new(env!("CARGO_BIN_EXE_topdog")).args(args).status().expect("topdog keys");
            assert!(status.success(), "topdog {args:?}");
        };
        let (from, to) = (first.dir.join("data"), dir.join("data"));
        topdog(&["keys".as_ref(), "export".as_ref(), keys.as_os_str(), "--data-dir".as_ref(), from.as_os_str()]);
        topdog(&["keys".as_ref(), "import".as_ref(), keys.as_os_str(), "--data-dir".as_ref(), to.as_os_str()]);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (child, ready) = spawn(dir, ["127.0.0.1:0", "127.0.0.1:0"], &args, &first.token);
        let client = first.client.clone();
        Appliance { child: Mutex::new(child), ready, token: first.token.clone(), client, dir: dir.to_owned(), args }
    }

    /// Stops the appliance (SIGTERM, waiting for it to exit) and starts it
    /// again on the same data directory and ports; when it was ready again.
    pub fn restart(&self) -> std::time::Instant {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let stopped = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
        assert!(stopped.success());
        let _ = child.wait();
        let http = format!("127.0.0.1:{}", self.ready.api_port());
        let mqtt = format!("127.0.0.1:{}", self.ready.mqtt_port());
        let (next, _) = spawn(&self.dir, [&http, &mqtt], &self.args, &self.token);
        *child = next;
        std::time::Instant::now()
    }

    async fn license(&self, seats: u32) {
        let dev_key = Path::new(env!("CARGO_MANIFEST_DIR")).join("license-keys/dev-license-key.private");
        let issued = Command::new(env!("CARGO_BIN_EXE_topdog"))
            .args(["license", "issue", "--customer", "Bench", "--seats", &seats.to_string(), "--signing-key"])
            .arg(dev_key)
            .output()
            .expect("topdog license issue");
        let key = String::from_utf8_lossy(&issued.stdout).trim().to_owned();
        let answer = self.request("/admin/license", Some(&serde_json::json!({"license_key": key})), true).await;
        assert!(
            answer.0 == 200,
            "activating a {seats}-seat development licence: {answer:?} (build with --features dev-license-key)"
        );
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.ready.api_url)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|p| p.into_inner()).id()
    }

    /// POSTs `body` (GETs without one), with the admin token when `admin`;
    /// the status and JSON answer.
    pub async fn request(&self, path: &str, body: Option<&Value>, admin: bool) -> (u16, Value) {
        let mut request = match body {
            Some(body) => self.client.post(self.url(path)).json(body),
            None => self.client.get(self.url(path)),
        };
        if admin {
            request = request.header("x-admin-token", &self.token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// `n` SMS invites made through `app`, eight requests at a time; request
/// `i` of maker `t` invites user `user(t, i)`. Their codes.
pub async fn make_invites(app: &std::sync::Arc<Appliance>, n: usize, user: fn(usize, usize) -> String) -> Vec<String> {
    const MAKERS: usize = 8;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..MAKERS {
        let app = app.clone();
        tasks.spawn(async move {
            let mut codes = Vec::with_capacity(n / MAKERS);
            for i in 0..n / MAKERS {
                let body =
                    serde_json::json!({"phone_number": "+14155552671", "user_id": user(t, i), "user_name": "Bench"});
                let (status, answer) = app.request("/phone/pairing/send-sms", Some(&body), true).await;
                assert_eq!(status, 200, "invite: {answer}");
                codes.push(answer["invite_code"].as_str().expect("a code").to_owned());
            }
            codes
        });
    }
    let mut codes = Vec::new();
    while let Some(part) = tasks.join_next().await {
        codes.extend(part.expect("invites"));
    }
    codes
}

/// CPU time process `pid` has used, user and system, in clock ticks
/// (1/100 s); 0 once it is gone.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    tick(11) + tick(12)
}
