//! Starting the appliance binary the way scripts do: `topdog serve
//! --ready-file PATH`, then wait for that file (written whole once every
//! listener is up) and read the addresses from it. Shared by the tests and
//! the benchmarks.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// What the ready file says.
#[derive(Debug, Clone, Deserialize)]
pub struct Ready {
    pub api_url: String,
    pub base_url: String,
    pub mqtt_url: String,
    pub ca_file: PathBuf,
    pub admin_socket: PathBuf,
    pub data_dir: PathBuf,
    pub pid: u32,
}

impl Ready {
    /// The HTTPS port.
    pub fn api_port(&self) -> u16 {
        port_of(&self.api_url)
    }

    /// The MQTT/TLS port.
    pub fn mqtt_port(&self) -> u16 {
        port_of(&self.mqtt_url)
    }
}

/// The port in a URL such as `https://127.0.0.1:8443`.
pub fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("a port in the URL")
}

/// Waits for `child` to write its ready file at `path` (polling; the
/// appliance writes it whole, by rename), failing if it exits first (with
/// the end of `log`, where its standard error goes, when there is one).
pub fn wait_ready(path: &Path, child: &mut Child, within: Duration, log: Option<&Path>) -> Ready {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).expect("a JSON ready file");
        }
        if let Ok(Some(status)) = child.try_wait() {
            let said = log.and_then(|log| std::fs::read_to_string(log).ok()).unwrap_or_default();
            let tail: Vec<&str> = said.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("topdog exited before it was ready: {status}\n{}", tail.join("\n"));
        }
        assert!(Instant::now() < deadline, "topdog was not ready within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
