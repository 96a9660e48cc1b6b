//! Pebble, Let's Encrypt's test ACME server (Debian's `pebble`), on
//! loopback, with `pebble-challtestsrv` as its DNS server so that every
//! name resolves to 127.0.0.1: pebble then validates challenges against the
//! appliance itself, on the ports the test names (`httpPort` for HTTP-01,
//! `tlsPort` for TLS-ALPN-01). It issues under a root it makes at start,
//! served at its management address (`/roots/0`).

use crate::helpers::eventually;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running pebble and its DNS server.
pub struct Pebble {
    pebble: Child,
    dns: Child,
    /// The ACME directory URL.
    pub directory: String,
    /// The root pebble's own HTTPS listener chains to (`--acme-ca-cert`).
    pub https_root: PathBuf,
    /// The root it issues certificates under (PEM).
    pub issuing_root: String,
    dir: tempfile::TempDir,
}

/// A loopback port nothing listens on (free when asked).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A CA and a certificate from it for pebble's HTTPS listener: its root
/// (PEM), its chain and its key.
fn pebble_tls() -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.distinguished_name.push(rcgen::DnType::CommonName, "pebble listener CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let root = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let key = KeyPair::generate().unwrap();
    (root, leaf.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
}

fn spawn(program: &str, args: &[String], log: PathBuf) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(program)
        .args(args)
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .env("PEBBLE_AUTHZREUSE", "0")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} (Debian package pebble; the test command installs it): {e}"))
}

impl Pebble {
    /// Starts pebble, validating HTTP-01 on `http_port` and TLS-ALPN-01
    /// on `tls_port` of 127.0.0.1.
    pub async fn start(http_port: u16, tls_port: u16) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let (root, chain, key) = pebble_tls();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let https_root = file("listener-root.pem", &root);
        let (listen, manage, dns, dns_manage) = (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{manage}"),
            "certificate": file("listener.pem", &chain),
            "privateKey": file("listener-key.pem", &key),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_file = file("pebble.json", &config.to_string());
        let dns_args =
            ["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-http01", "", "-https01", "", "-tlsalpn01", ""];
        let mut dns_args: Vec<String> = dns_args.iter().map(|s| s.to_string()).collect();
        dns_args.extend([
            "-dns01".into(),
            format!("127.0.0.1:{dns}"),
            "-management".into(),
            format!("127.0.0.1:{dns_manage}"),
        ]);
        let dns_server = spawn("pebble-challtestsrv", &dns_args, dir.path().join("dns.log"));
        let args =
            ["-config".to_owned(), config_file.display().to_string(), "-dnsserver".into(), format!("127.0.0.1:{dns}")];
        let pebble = spawn("pebble", &args, dir.path().join("pebble.log"));
        let mut started = Pebble {
            pebble,
            dns: dns_server,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            https_root,
            issuing_root: String::new(),
            dir,
        };
        started.issuing_root = started.fetch_root(manage).await;
        started
    }

    /// Waits for pebble to listen; the root it issues under.
    async fn fetch_root(&self, manage: u16) -> String {
        let client = crate::helpers::client_trusting(&self.https_root);
        let url = format!("https://127.0.0.1:{manage}/roots/0");
        eventually(|| async {
            let answer = client.get(&url).send().await.map_err(|e| e.to_string())?;
            let text = answer.text().await.map_err(|e| e.to_string())?;
            text.contains("BEGIN CERTIFICATE").then_some(text).ok_or_else(|| "no root yet".to_owned())
        })
        .await
    }

    /// The appliance's ACME flags for `domains`, against this pebble.
    pub fn flags(&self, domains: &[&str]) -> Vec<String> {
        let mut flags = vec!["--acme-directory".to_owned(), self.directory.clone()];
        flags.extend(["--acme-ca-cert".to_owned(), self.https_root.display().to_string()]);
        flags.extend(["--acme-email".to_owned(), "ops@topdog.test".to_owned()]);
        for domain in domains {
            flags.extend(["--acme-domain".to_owned(), domain.to_string()]);
        }
        flags
    }

    /// Stops pebble (its DNS server too): from then on, ACME fails.
    pub fn stop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Pebble's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client that trusts only `root` and finds `name` on 127.0.0.1:`port`
/// (as a phone with only public roots would, DNS aside).
pub fn client_for(root: &str, name: &str, port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
        .resolve(name, SocketAddr::from(([127, 0, 0, 1], port)))
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}
