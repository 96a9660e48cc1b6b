//! The appliance binary in its own process, for the benchmarks: a fresh
//! data directory, ephemeral ports, a known admin token, a development
//! licence with the seats asked for, and a client that trusts its CA. It
//! starts through the ready file, as scripts do; dropping it stops it.

#[path = "ready.rs"]
mod ready;

pub use ready::Ready;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running appliance.
pub struct Appliance {
    child: Child,
    pub ready: Ready,
    pub token: String,
    pub client: reqwest::Client,
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Appliance {
    /// Starts the appliance in `dir` with `args` and activates a licence of
    /// `seats` (signed with the development key: build with
    /// `--features dev-license-key`).
    pub async fn start(dir: &Path, args: &[&str], seats: u32) -> Appliance {
        let token = format!("bench-admin-{:032x}", rand::random::<u128>());
        let ready_file = dir.join("ready.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_topdog"))
            .args(["serve", "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--ready-file")
            .arg(&ready_file)
            .args(args)
            .env("ADMIN_TOKEN", &token)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start topdog");
        let ready = ready::wait_ready(&ready_file, &mut child, Duration::from_secs(60));
        let pem = std::fs::read(&ready.ca_file).expect("the appliance CA");
        let ca = reqwest::Certificate::from_pem(&pem).expect("a PEM CA");
        let client = reqwest::Client::builder().add_root_certificate(ca).build().expect("client");
        let app = Appliance { child, ready, token, client };
        app.license(seats).await;
        app
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
        self.child.id()
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
