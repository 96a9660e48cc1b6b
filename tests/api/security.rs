//! Security review checks driven from outside: slow clients (slowloris) do
//! not stop a normal request; oversized headers are refused and the server
//! stays healthy; after a whole story (pairing, notify, approval, command,
//! revoke) the log holds no secret and no whole phone number.

use crate::helpers::{send, spawn_app, spawn_process, TestApp};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

async fn tls_stream(app: &TestApp) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut std::fs::read(app.ca_file()).unwrap().as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap()
}

#[tokio::test]
async fn a_hundred_slow_clients_do_not_stop_a_normal_request() {
    let app = spawn_app().await;
    // Silent sockets from another address: an address that holds idle
    // sockets only ever delays its own handshakes (`review` tests that).
    let mut held = Vec::new();
    for _ in 0..50 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(([127, 0, 0, 3], 0).into()).unwrap();
        held.push(socket.connect(([127, 0, 0, 1], app.port).into()).await.unwrap());
    }
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = tls_stream(&app).await;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.unwrap();
        stream.flush().await.unwrap();
        slow.push(stream);
    }
    let answered = tokio::time::timeout(Duration::from_secs(5), app.client.get(app.url("/healthz")).send()).await;
    let response = answered.expect("a normal request is answered while 100 clients hang").unwrap();
    assert_eq!(response.status(), 200);
    drop((held, slow));
}

#[tokio::test]
async fn oversized_headers_are_refused_and_the_server_stays_healthy() {
    let app = spawn_app().await;
    let huge = "x".repeat(100 * 1024);
    let (status, refused) = send(app.client.get(app.url("/healthz")).header("x-huge", &huge)).await;
    // 431 from hyper while the head is still arriving, or from our check
    // (with a JSON error) when it came in one piece.
    assert_eq!(status, 431, "{refused}");
    assert!(refused.is_null() || refused["error"] == "headers_too_large", "{refused}");
    let (status, body) = send(app.client.post(app.url("/phone/notify")).body(vec![b'{'; 65 * 1024])).await;
    assert_eq!((status, body["error"].as_str()), (413, Some("payload_too_large")));
    assert_eq!(app.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn the_log_holds_no_secret_and_no_whole_phone_number() {
    let mut app = spawn_process().await;
    let (_, invite) = app.send_sms("+14155552671", "alice").await;
    let code = invite["invite_code"].as_str().unwrap().to_owned();
    let (_, paired) = app.accept(&code, "phone-a").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();
    app.admin_post("/phone/notify", json!({"user_id": "alice", "title": "t"})).await;
    let (_, approval) = app.admin_post("/phone/approvals", json!({"user_id": "alice", "title": "ok?"})).await;
    let answer = json!({"decision": "approve", "code": approval["code"]});
    let path = format!("/phone/approvals/{}/respond", approval["id"].as_str().unwrap());
    send(app.client.post(app.url(&path)).bearer_auth(&token).json(&answer)).await;
    send(app.client.post(app.url("/phone/commands")).bearer_auth(&token).json(&json!({"text": "hello"}))).await;
    send(app.client.get(app.url("/phone/me")).header("x-admin-token", "tdadm_wrong_guess")).await;
    send(app.admin(reqwest::Method::DELETE, "/phone/devices/phone-a")).await;
    assert_eq!(app.get("/phone/me").await.0, 401);
    assert!(app.stop().success());
    let log = app.log();
    assert!(log.contains("phone paired"), "the log was written: {log}");
    let secrets = [
        ("the phone number", "4155552671".to_owned()),
        ("the admin token", app.admin_token.clone()),
        ("a wrong admin token", "tdadm_wrong_guess".to_owned()),
        ("the invite code", code.clone()),
        ("the device token", token.clone()),
        ("the device token's signature", token.rsplit('.').next().unwrap().to_owned()),
    ];
    for (what, secret) in secrets {
        assert!(!log.contains(&secret), "{what} appears in the log");
    }
    let audit = serde_json::to_string(&app.audit()).unwrap();
    for secret in ["4155552671", code.as_str(), token.as_str(), app.admin_token.as_str()] {
        assert!(!audit.contains(secret), "a secret appears in the audit log");
    }
}
