//! Data directory formats: a directory written by the previous format (the
//! fixture made by `tests/fixtures/make-datadir-v1.sh` with that release)
//! is upgraded in place and keeps its phone, token and admin token; a
//! directory of a newer format is refused with a clear error and left as
//! it was.

use crate::helpers::{binary, start_in, Options};
use std::path::Path;
use std::process::Command;

fn unpack_fixture(into: &Path) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-v1.tar.gz");
    let status = Command::new("tar").arg("xzf").arg(&fixture).arg("-C").arg(into).status().expect("tar");
    assert!(status.success(), "unpacking {}", fixture.display());
}

#[tokio::test]
async fn a_format_1_directory_is_upgraded_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    unpack_fixture(dir.path());
    let data = dir.path().join("data");
    assert!(!data.join("format-version").exists(), "the fixture predates the version file");
    let token = std::fs::read_to_string(dir.path().join("token.txt")).unwrap().trim().to_owned();
    let old_cert = std::fs::read_to_string(data.join("server-cert.pem")).unwrap();
    let mut app = start_in(dir, Options::default().process(), "fixture-admin-token").await;
    assert_eq!(std::fs::read_to_string(app.data_dir().join("format-version")).unwrap(), "2\n");
    let new_cert = std::fs::read_to_string(app.data_dir().join("server-cert.pem")).unwrap();
    assert_ne!(new_cert, old_cert, "format 2 re-issues the server certificate");
    let der = rustls_pemfile::certs(&mut new_cert.as_bytes()).next().unwrap().unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(cert
        .extensions()
        .iter()
        .any(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER));
    assert!(app.log().contains("upgrading the data directory"), "{}", app.log());
    let (status, devices) = app.admin_get("/phone/devices").await;
    assert_eq!(status, 200, "the old admin token still works: {devices}");
    assert_eq!(devices["devices"][0]["device_id"], "fixture-phone");
    let (status, me) = app.device_get("/phone/me", &token).await;
    assert_eq!((status, me["user_id"].as_str()), (200, Some("fixture")), "the old device token still works");
    let (status, sent) =
        app.admin_post("/phone/notify", serde_json::json!({"user_id": "fixture", "title": "after the upgrade"})).await;
    assert_eq!(status, 200, "the new tables work on the upgraded store: {sent}");
    assert!(app.stop().success());
}

#[test]
fn a_newer_format_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    unpack_fixture(dir.path());
    let data = dir.path().join("data");
    std::fs::write(data.join("format-version"), "99\n").unwrap();
    let before: Vec<_> = walk(&data);
    let out = Command::new(binary())
        .args(["serve", "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("format 99, newer than this topdog understands (2)"), "{stderr}");
    assert_eq!(walk(&data), before, "nothing in the directory changed");
}

/// Every file under `dir` with its size and modification time.
fn walk(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            files.extend(walk(&entry.path()));
        } else {
            files.push((entry.path().display().to_string(), meta.len(), meta.modified().unwrap()));
        }
    }
    files.sort();
    files
}
