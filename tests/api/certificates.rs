//! The operator's own certificate (`--tls-cert`/`--tls-key`), replaced
//! while the appliance serves: the next handshake presents the new one, a
//! connection opened before keeps working, a broken pair leaves the last
//! good one serving, and SIGHUP reloads at once.

use crate::helpers::{eventually, spawn_with, Options, TestApp};
use crate::phone::tls_config;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A certificate authority made for the test.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn test_ca(name: &str) -> TestCa {
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    TestCa { pem, issuer: Issuer::new(params, key) }
}

/// A server certificate for localhost from `ca`: (chain PEM, key PEM).
fn leaf(ca: &TestCa, name: &str) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    (params.signed_by(&key, &ca.issuer).unwrap().pem(), key.serialize_pem())
}

/// Replaces a file whole (as `install` or a renewal tool does).
fn replace(path: &PathBuf, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// A TLS connection to the HTTPS port trusting `roots`.
async fn connect(app: &TestApp, roots: &str) -> TlsStream<TcpStream> {
    connect_as(app.port, roots, "localhost").await.expect("handshake")
}

/// A TLS connection to 127.0.0.1:`port` for the name `name`, trusting `roots`.
pub async fn connect_as(port: u16, roots: &str, name: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let connector = tokio_rustls::TlsConnector::from(tls_config(roots, None));
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    connector.connect(name, tcp).await
}

/// The common name of the certificate a connection was shown.
fn shown(conn: &TlsStream<TcpStream>) -> String {
    let der = conn.get_ref().1.peer_certificates().expect("a certificate")[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn = cert.subject().iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or_default();
    cn.to_owned()
}

/// Waits until a new handshake is shown the certificate named `name`.
async fn until_shown(app: &TestApp, roots: &str, name: &str) {
    eventually(|| async {
        let now = shown(&connect(app, roots).await);
        if now == name {
            Ok(())
        } else {
            Err(format!("still {now}"))
        }
    })
    .await;
}

/// One HTTP/1.1 request on a kept-alive connection; the status line.
pub async fn healthz(conn: &mut TlsStream<TcpStream>) -> String {
    conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = conn.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_replaced_certificate_serves_new_handshakes_and_open_connections_keep_working() {
    let (first_ca, second_ca) = (test_ca("First CA"), test_ca("Second CA"));
    let roots = format!("{}{}", first_ca.pem, second_ca.pem);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let (chain, secret) = leaf(&first_ca, "first");
    std::fs::write(&cert, chain).unwrap();
    std::fs::write(&key, secret).unwrap();
    let options = Options::default().unlicensed().process().arg("--tls-cert").arg(cert.to_str().unwrap());
    let app = spawn_with(options.arg("--tls-key").arg(key.to_str().unwrap())).await;

    let mut open = connect(&app, &roots).await;
    assert_eq!(shown(&open), "first");
    assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK");

    let (chain, secret) = leaf(&second_ca, "second");
    replace(&key, &secret);
    replace(&cert, &chain);
    until_shown(&app, &roots, "second").await;
    assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK", "the connection opened before keeps working");
    assert_eq!(shown(&open), "first");
    let roots_file = dir.path().join("roots.pem");
    std::fs::write(&roots_file, &roots).unwrap();
    let client = crate::helpers::client_trusting(&roots_file);
    let request = client.get(format!("https://localhost:{}/admin/status", app.port));
    let (_, status) = crate::helpers::send(request.header("x-admin-token", &app.admin_token)).await;
    let certificate = &status["certificate"];
    assert_eq!((certificate["subject"].as_str(), certificate["issuer"].as_str()), (Some("second"), Some("Second CA")));
    assert!(certificate["days_left"].as_i64().unwrap() > 300, "{certificate}");
    let metrics = client.get(format!("https://localhost:{}/metrics", app.port)).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("topdog_tls_certificate_days_left "), "{metrics}");

    replace(&cert, "-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n");
    eventually(|| async {
        if app.log().contains("TLS certificate not reloaded") {
            Ok(())
        } else {
            Err("no complaint yet".into())
        }
    })
    .await;
    assert_eq!(shown(&connect(&app, &roots).await), "second", "a broken pair leaves the last good one");

    let (chain, secret) = leaf(&first_ca, "third");
    replace(&key, &secret);
    replace(&cert, &chain);
    let status = std::process::Command::new("kill").args(["-HUP", &app.pid().to_string()]).status().unwrap();
    assert!(status.success());
    until_shown(&app, &roots, "third").await;
    eventually(|| async {
        if app.log().contains("SIGHUP") {
            Ok(())
        } else {
            Err("SIGHUP not logged".into())
        }
    })
    .await;
}

#[tokio::test]
async fn the_ca_page_offers_the_certificate_and_its_fingerprint() {
    let app = crate::helpers::spawn_app().await;
    let pem = std::fs::read_to_string(app.ca_file()).unwrap();
    let der = rustls_pemfile::certs(&mut pem.as_bytes()).next().unwrap().unwrap().to_vec();
    let fingerprint: Vec<String> = {
        use sha2::Digest;
        sha2::Sha256::digest(&der).iter().map(|b| format!("{b:02X}")).collect()
    };
    let fingerprint = fingerprint.join(":");

    let page = app.client.get(app.url("/ca")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&fingerprint), "the page shows the fingerprint");
    assert!(html.contains("iPhone") && html.contains("Android") && html.contains("href=\"/ca.crt\""));

    let crt = app.client.get(app.url("/ca.crt")).send().await.unwrap();
    assert_eq!(crt.headers()["content-type"], "application/x-x509-ca-cert");
    assert_eq!(crt.bytes().await.unwrap().to_vec(), der, "the download is the CA, DER");
    let text = app.client.get(app.url("/ca.pem")).send().await.unwrap().text().await.unwrap();
    assert_eq!(text, pem);
    let (_, status) = app.admin_get("/admin/status").await;
    assert_eq!(status["ca_fingerprint"], fingerprint.as_str(), "the admin sees the same to compare");
    let console = app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(console.contains("href=\"/ca\""), "the console links to it");
}
