//! Both listeners scanned by sslyze (PyPI; the test command installs it in
//! `target/pyenv`): only TLS 1.2 and 1.3, only ECDHE with AEAD suites, a
//! certificate chain that verifies against the appliance CA and names the
//! address it was reached at, and a client certificate required on MQTT.

use crate::helpers::{spawn_app, TestApp};
use serde_json::Value;
use std::process::Command;

fn sslyze(app: &TestApp, port: u16) -> Value {
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/bin/python");
    let out = app.dir.path().join(format!("sslyze-{port}.json"));
    let status = Command::new(python)
        .args(["-m", "sslyze", "--quiet"])
        .arg(format!("--json_out={}", out.display()))
        .arg(format!("--certinfo_ca_file={}", app.ca_file().display()))
        .arg(format!("127.0.0.1:{port}"))
        .status()
        .expect("sslyze (the test command installs it in target/pyenv)");
    assert!(status.code().is_some(), "sslyze ran");
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    report["server_scan_results"][0].clone()
}

fn suites(scan: &Value, protocol: &str) -> Vec<String> {
    let result = &scan["scan_result"][format!("{protocol}_cipher_suites")]["result"];
    assert!(!result.is_null(), "{protocol} was scanned");
    result["accepted_cipher_suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["cipher_suite"]["name"].as_str().unwrap().to_owned())
        .collect()
}

fn check_protocols(scan: &Value, listener: &str) {
    for old in ["ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"] {
        assert!(suites(scan, old).is_empty(), "{listener} accepts {old}");
    }
    let tls12 = suites(scan, "tls_1_2");
    assert!(!tls12.is_empty() && !suites(scan, "tls_1_3").is_empty(), "{listener}: TLS 1.2 and 1.3");
    for suite in tls12 {
        let strong =
            suite.starts_with("TLS_ECDHE_") && (suite.contains("_GCM_") || suite.contains("CHACHA20_POLY1305"));
        assert!(strong, "{listener} accepts the weak suite {suite}");
    }
}

#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs sslyze: the test command (tests/run.sh) installs it and runs this"
)]
#[tokio::test]
async fn both_listeners_pass_a_tls_scan() {
    let app = spawn_app().await;
    let https = sslyze(&app, app.port);
    assert_eq!(https["scan_status"], "COMPLETED");
    check_protocols(&https, "HTTPS");
    let deployment = &https["scan_result"]["certificate_info"]["result"]["certificate_deployments"][0];
    let ours = deployment["path_validation_results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["trust_store"]["name"] == "Supplied CA file")
        .expect("validated against the appliance CA");
    assert_eq!(ours["was_validation_successful"], true, "{ours}");
    let leaf = &deployment["received_certificate_chain"][0];
    assert!(leaf["subject_alternative_name"]["ip_addresses"].as_array().unwrap().iter().any(|ip| ip == "127.0.0.1"));
    assert_eq!(https["connectivity_result"]["client_auth_requirement"], "DISABLED");

    let mqtt = sslyze(&app, app.mqtt_port);
    check_protocols(&mqtt, "MQTT");
    assert_eq!(mqtt["connectivity_result"]["client_auth_requirement"], "REQUIRED");
}
