//! Phones on the embedded broker, through the gateway, with rumqttc over
//! real TLS: a paired phone connects with its certificate and token and
//! gets its own messages; no certificate, a foreign certificate, a wrong
//! client id or another phone's topics are refused; a silent TCP connection
//! blocks nobody; revoking a connected phone closes it at once for good.

use crate::helpers::{send, spawn_app, spawn_with, Options, TestApp};
use crate::phone::{client, connected, dropped, phone, receive, tls_config, Phone, WAIT};
use rumqttc::QoS;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_paired_phone_connects_and_talks_within_its_own_topics() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("alice", "phone-a").await;
    let prefix = paired["mqtt_topic_prefix"].as_str().unwrap().to_owned();
    assert!(prefix.starts_with("/tenants/t") && prefix.ends_with("/topdog/alice/phone-a"), "{prefix}");
    let (client, mut events) = phone(&app, &paired, "phone-a");
    connected(&mut events).await.expect("connected");
    client.subscribe(format!("{prefix}/#"), QoS::AtLeastOnce).await.unwrap();
    client
        .publish(format!("{prefix}/presence"), QoS::AtLeastOnce, false, br#"{"status":"online"}"#.to_vec())
        .await
        .unwrap();
    let got = receive(&mut events, &format!("{prefix}/presence")).await.expect("own message");
    assert_eq!(got, br#"{"status":"online"}"#);
}

#[tokio::test]
async fn another_phones_topics_are_out_of_reach() {
    let mut app = spawn_app().await;
    let a = app.pair_full("alice", "phone-a").await;
    let b = app.pair_full("bob", "phone-b").await;
    let (client, mut events) = phone(&app, &a, "phone-a");
    connected(&mut events).await.unwrap();
    let b_prefix = b["mqtt_topic_prefix"].as_str().unwrap();
    client.subscribe(format!("{b_prefix}/#"), QoS::AtLeastOnce).await.unwrap();
    dropped(&mut events).await;
    let (client, mut events) = phone(&app, &a, "phone-a");
    connected(&mut events).await.unwrap();
    client.publish(format!("{b_prefix}/voice_command"), QoS::AtLeastOnce, false, b"{}".to_vec()).await.unwrap();
    dropped(&mut events).await;
}

#[tokio::test]
async fn connections_without_the_right_certificate_or_identity_are_refused() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("carol", "phone-c").await;
    let ca = paired["mqtt_ca_cert"].as_str().unwrap();
    let token = paired["jwt_token"].as_str().unwrap();

    let (_c, mut no_cert) = client(&app, tls_config(ca, None), "phone-c", token);
    assert!(connected(&mut no_cert).await.is_err(), "no client certificate");

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "phone-c");
    let foreign = params.self_signed(&key).unwrap();
    let (_c, mut wrong_ca) =
        client(&app, tls_config(ca, Some((&foreign.pem(), &key.serialize_pem()))), "phone-c", token);
    assert!(connected(&mut wrong_ca).await.is_err(), "certificate from another CA");

    let (_c, mut other_id) = phone(&app, &paired, "phone-x");
    assert!(connected(&mut other_id).await.is_err(), "client id differs from the certificate");
    let (_c, mut bad_token) = client(
        &app,
        tls_config(
            ca,
            Some((paired["mqtt_client_cert"].as_str().unwrap(), paired["mqtt_client_key"].as_str().unwrap())),
        ),
        "phone-c",
        "not-a-token",
    );
    assert!(connected(&mut bad_token).await.is_err(), "bad password");
    let (_c, mut good) = phone(&app, &paired, "phone-c");
    connected(&mut good).await.expect("the real phone still gets in");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for reason in ["handshake", "connect"] {
        assert!(
            metrics.contains(&format!("topdog_gateway_refused_total{{reason=\"{reason}\"}}")),
            "{reason}: {metrics}"
        );
    }
}

#[tokio::test]
async fn a_silent_connection_does_not_block_other_phones() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("dan", "phone-d").await;
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", app.mqtt_port)).await.unwrap();
    let _half = {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", app.mqtt_port)).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, &[0x16, 0x03, 0x01]).await.unwrap();
        s
    };
    let (_c, mut events) = phone(&app, &paired, "phone-d");
    connected(&mut events).await.expect("connected despite silent sockets");
}

#[tokio::test]
async fn revoking_a_connected_phone_tells_it_then_closes_it_at_once_and_for_good() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("erin", "phone-e").await;
    let mut live = Phone::connect(&app, &paired).await;
    let (status, _) = send(app.admin(reqwest::Method::DELETE, "/phone/devices/phone-e")).await;
    assert_eq!(status, 200);
    let started = std::time::Instant::now();
    let control = live.next("control").await;
    assert_eq!(control["action"], "revoked", "{control}");
    live.dropped().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "closed after {took:?}");
    let (_c, mut again) = phone(&app, &paired, "phone-e");
    assert!(connected(&mut again).await.is_err(), "a revoked phone cannot reconnect");
}

#[tokio::test]
async fn suspending_closes_the_connection_and_reactivating_lets_it_back() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("fay", "phone-f").await;
    let mut phone_f = Phone::connect(&app, &paired).await;
    send(app.admin(reqwest::Method::POST, "/phone/devices/phone-f/suspend")).await;
    assert_eq!(phone_f.next("control").await["action"], "suspended");
    phone_f.dropped().await;
    let (_c, mut refused) = phone(&app, &paired, "phone-f");
    assert!(connected(&mut refused).await.is_err());
    send(app.admin(reqwest::Method::POST, "/phone/devices/phone-f/reactivate")).await;
    let (_c, mut back) = phone(&app, &paired, "phone-f");
    connected(&mut back).await.expect("reactivated phone reconnects");
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let mut app = spawn_with(Options::default().arg("--mqtt-max-per-ip").arg("2")).await;
    let paired = app.pair_full("gus", "phone-g").await;
    let a = tokio::net::TcpStream::connect(("127.0.0.1", app.mqtt_port)).await.unwrap();
    let b = tokio::net::TcpStream::connect(("127.0.0.1", app.mqtt_port)).await.unwrap();
    let (_c, mut third) = phone(&app, &paired, "phone-g");
    assert!(connected(&mut third).await.is_err(), "a third connection from one address is refused");
    drop((a, b));
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_c, mut retry) = phone(&app, &paired, "phone-g");
        if connected(&mut retry).await.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the cap was not released when the sockets closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `mosquitto_pub` as the paired phone; whether the broker acknowledged
/// the QoS 1 publish on `topic`.
fn mosquitto_pub(app: &TestApp, paired: &Value, dir: &std::path::Path, topic: &str, with_cert: bool) -> bool {
    let write = |name: &str, field: &str| {
        let path = dir.join(name);
        std::fs::write(&path, paired[field].as_str().unwrap()).unwrap();
        path
    };
    let (ca, cert, key) =
        (write("ca.pem", "mqtt_ca_cert"), write("cert.pem", "mqtt_client_cert"), write("key.pem", "mqtt_client_key"));
    let device = paired["device_id"].as_str().unwrap();
    let mut command = std::process::Command::new("mosquitto_pub");
    command.args(["-h", "localhost", "-p", &app.mqtt_port.to_string(), "-V", "mqttv311", "-q", "1", "-k", "60"]);
    command.arg("--cafile").arg(&ca);
    if with_cert {
        command.arg("--cert").arg(&cert).arg("--key").arg(&key);
    }
    command.args([
        "-i",
        device,
        "-u",
        device,
        "-P",
        paired["jwt_token"].as_str().unwrap(),
        "-t",
        topic,
        "-m",
        "{\"status\":\"online\"}",
    ]);
    let out = command.output().expect("mosquitto_pub (Debian package mosquitto-clients)");
    out.status.success()
}

#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs mosquitto-clients: the test command (tests/run.sh) installs it and runs this"
)]
#[tokio::test]
async fn a_non_rust_client_works_too() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("hal", "phone-h").await;
    let other = app.pair_full("ida", "phone-i").await;
    let dir = tempfile::tempdir().unwrap();
    let own = format!("{}/presence", paired["mqtt_topic_prefix"].as_str().unwrap());
    let foreign = format!("{}/presence", other["mqtt_topic_prefix"].as_str().unwrap());
    assert!(mosquitto_pub(&app, &paired, dir.path(), &own, true), "publish to its own topic is acknowledged");
    assert!(!mosquitto_pub(&app, &paired, dir.path(), &foreign, true), "publish into another phone's topics fails");
    assert!(!mosquitto_pub(&app, &paired, dir.path(), &own, false), "no client certificate, no connection");
}

#[tokio::test]
async fn a_phone_that_sends_a_csr_keeps_its_key_and_connects_with_it() {
    let app = spawn_app().await;
    let (_, invite) = app.send_sms("+14155552671", "hope").await;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "someone-else");
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let mut body = crate::helpers::accept_body(invite["invite_code"].as_str().unwrap(), "phone-h", None);
    body["mqtt_csr"] =
        serde_json::json!("-----BEGIN CERTIFICATE REQUEST-----\nnot one\n-----END CERTIFICATE REQUEST-----\n");
    let (status, refused) = app.post("/phone/pairing/accept-invite", body.clone()).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_csr")));
    body["mqtt_csr"] = serde_json::json!(csr);
    let (status, paired) = app.post("/phone/pairing/accept-invite", body).await;
    assert_eq!(status, 200, "{paired}");
    assert!(paired.get("mqtt_client_key").is_none(), "no key is made for a phone that sent a CSR");
    let der =
        rustls_pemfile::certs(&mut paired["mqtt_client_cert"].as_str().unwrap().as_bytes()).next().unwrap().unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap();
    assert_eq!(cn, "phone-h", "the appliance sets the names, not the CSR");
    assert_eq!(cert.public_key().raw, rcgen::PublicKeyData::subject_public_key_info(&key).as_slice());
    let chain = (paired["mqtt_client_cert"].as_str().unwrap(), key.serialize_pem());
    let config = tls_config(paired["mqtt_ca_cert"].as_str().unwrap(), Some((chain.0, &chain.1)));
    let (_c, mut events) = client(&app, config, "phone-h", paired["jwt_token"].as_str().unwrap());
    connected(&mut events).await.expect("connects with its own key");
}

/// The appliance's listening TCP ports other than its HTTPS and MQTT ones,
/// from `ss`.
fn other_ports(app: &TestApp) -> Vec<u16> {
    let out = std::process::Command::new("ss").args(["-Hltnp"]).output().expect("ss (iproute2)");
    let owner = format!("pid={},", app.pid());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&owner))
        .filter_map(|l| l.split_whitespace().nth(3)?.rsplit_once(':')?.1.parse().ok())
        .filter(|p| *p != app.port && *p != app.mqtt_port)
        .collect()
}

#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs ss (iproute2): the test command (tests/run.sh) installs it and runs this"
)]
#[tokio::test]
async fn the_broker_has_no_port_for_a_local_process_to_reach_around_the_gateway() {
    let mut app = spawn_with(Options::default().process()).await;
    let paired = app.pair_full("alice", "phone-a").await;
    let (_client, mut events) = phone(&app, &paired, "phone-a");
    connected(&mut events).await.expect("the phone, through the gateway, is let in");
    assert_eq!(other_ports(&app), Vec::<u16>::new(), "listening only on the HTTPS and MQTT ports");
}

/// How many messages of `kind` phones have sent the appliance.
async fn received(app: &TestApp, kind: &str) -> u64 {
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let line = format!("topdog_mqtt_messages_total{{direction=\"in\",type=\"{kind}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(line.as_str())?.parse().ok()).unwrap_or(0)
}

/// Waits until `received(kind)` reaches `n`.
async fn until_received(app: &TestApp, kind: &str, n: u64) {
    let wait = async {
        while received(app, kind).await < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, wait).await.unwrap_or_else(|_| panic!("{n} {kind} message(s) never arrived"));
}

#[tokio::test]
async fn a_phones_will_is_published_when_it_drops_and_not_when_it_says_goodbye() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("alice", "phone-a").await;
    let presence = format!("{}/presence", paired["mqtt_topic_prefix"].as_str().unwrap());
    let with_will = || {
        let (client, events) = phone(&app, &paired, "phone-a");
        let mut options = events.mqtt_options.clone();
        options.set_last_will(rumqttc::LastWill::new(&presence, r#"{"state":"offline"}"#, QoS::AtLeastOnce, false));
        drop(client);
        rumqttc::AsyncClient::new(options, 16)
    };
    let (client, mut events) = with_will();
    connected(&mut events).await.expect("connected");
    drop((client, events));
    until_received(&app, "presence", 1).await;

    let (client, mut events) = with_will();
    connected(&mut events).await.expect("connected again");
    client.disconnect().await.unwrap();
    dropped(&mut events).await;
    // Then a message the appliance reads after anything the goodbye could
    // have set off (one phone's messages are handled in order).
    let (client, mut events) = phone(&app, &paired, "phone-a");
    connected(&mut events).await.expect("connected a third time");
    let seen = format!("{}/seen", paired["mqtt_topic_prefix"].as_str().unwrap());
    client.publish(seen, QoS::AtLeastOnce, false, br#"{"ids":[]}"#.to_vec()).await.unwrap();
    let flush = async {
        loop {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = events.poll().await {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, flush).await.expect("the appliance took it");
    until_received(&app, "seen", 1).await;
    assert_eq!(received(&app, "presence").await, 1, "no will after a DISCONNECT");
}

#[tokio::test]
async fn a_phone_silent_past_its_keep_alive_is_closed() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("alice", "phone-a").await;
    let cert = (paired["mqtt_client_cert"].as_str().unwrap(), paired["mqtt_client_key"].as_str().unwrap());
    let config = tls_config(paired["mqtt_ca_cert"].as_str().unwrap(), Some(cert));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.mqtt_port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.unwrap();
    let connect = crate::phone::connect_packet("phone-a", paired["jwt_token"].as_str().unwrap(), 1);
    tls.write_all(&connect).await.unwrap();
    let mut ack = [0u8; 4];
    tls.read_exact(&mut ack).await.unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0], "let in");
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    // A close without close_notify reads as an error: either way it ended.
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut rest)).await.expect("closed");
    assert!(rest.is_empty(), "nothing but the close: {rest:?}");
    let silent = started.elapsed();
    assert!(silent >= Duration::from_millis(1400), "closed after {silent:?}, before 1.5 × its keep-alive of 1 s");

    let connect = crate::phone::connect_packet("phone-a", paired["jwt_token"].as_str().unwrap(), 0);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.mqtt_port)).await.unwrap();
    let config = tls_config(paired["mqtt_ca_cert"].as_str().unwrap(), Some(cert));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.unwrap();
    tls.write_all(&connect).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut answer)).await.expect("closed");
    assert!(answer.is_empty(), "a keep-alive of 0 is refused: {answer:?}");
}
