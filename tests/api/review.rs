//! The adversarial review's findings, each tried the way the attacker did:
//! a re-paired device id, number matching by trial, idle sockets from one
//! address, junk HTTP methods, rotating user agents, queued commands of a
//! revoked phone, topic and retained-message floods, event-stream caps and
//! revocation, trickled bodies and dotted device ids.

use crate::helpers::{accept_body, send, spawn_app, spawn_process, spawn_with, Options, TestApp};
use crate::phone::{self, Phone};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GOOD: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

async fn notify(app: &TestApp, user: &str, title: &str) {
    let (status, answer) = app.admin_post("/phone/notify", json!({"user_id": user, "title": title})).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_re_paired_device_id_starts_empty_and_its_old_certificate_is_refused() {
    let mut app = spawn_app().await;
    let alice = app.pair_full("alice", "pixel-8").await;
    let alice_token = alice["jwt_token"].as_str().unwrap().to_owned();
    notify(&app, "alice", "Alice's private build").await;
    let (status, _) = send(app.client.delete(app.url("/phone/me")).bearer_auth(&alice_token)).await;
    assert_eq!(status, 200);

    let bob = app.pair_full("bob", "pixel-8").await;
    let bob_token = bob["jwt_token"].as_str().unwrap();
    let (status, listed) = app.device_get("/phone/notifications?since=all", bob_token).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["count"], 0, "Bob sees nothing of Alice's: {listed}");
    notify(&app, "bob", "Bob's build").await;
    let (_, listed) = app.device_get("/phone/notifications?since=all", bob_token).await;
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["notifications"][0]["title"], "Bob's build");

    // Alice's certificate (same CN and tenant) with Bob's valid token: the
    // gateway refuses it at the door, by its public key.
    let mut stolen = bob.clone();
    stolen["mqtt_client_cert"] = alice["mqtt_client_cert"].clone();
    stolen["mqtt_client_key"] = alice["mqtt_client_key"].clone();
    let (_, mut events) = phone::phone(&app, &stolen, "pixel-8");
    assert!(phone::connected(&mut events).await.is_err(), "an earlier pairing's certificate is refused");
    let (_, mut events) = phone::phone(&app, &bob, "pixel-8");
    assert_eq!(phone::connected(&mut events).await, Ok(()), "the current pairing's certificate works");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"topdog_gateway_refused_total{reason="certificate"} 1"#), "{metrics}");
}

#[tokio::test]
async fn dotted_device_ids_are_refused_at_pairing() {
    let app = spawn_app().await;
    let (_, invite) = app.send_sms("+14155552671", "dot").await;
    let (status, refused) = app.accept(invite["invite_code"].as_str().unwrap(), "pixel.8").await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_field")), "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("device_id"), "{refused}");
    let (_, view) = app.get(&format!("/phone/pairing/invite/{}", invite["invite_code"].as_str().unwrap())).await;
    assert_eq!(view["status"], "pending", "nothing changed");
}

/// Opens `n` TCP connections from 127.0.0.1 that never say anything.
async fn idle_sockets(port: u16, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            held.push(s);
        }
    }
    held
}

#[tokio::test]
async fn idle_sockets_from_one_address_do_not_lock_out_another() {
    let mut app = spawn_app().await;
    let paired = app.pair_full("carol", "phone-c").await;
    let _https = idle_sockets(app.port, 700).await;
    let _mqtt = idle_sockets(app.mqtt_port, 700).await;

    let pem = std::fs::read(app.ca_file()).unwrap();
    let good = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .local_address(GOOD)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let health = good.get(app.url("/healthz")).send().await.expect("HTTPS answers another address at once");
    assert_eq!(health.status(), 200);

    let connack = mqtt_connect_from(&app, &paired, GOOD).await;
    assert_eq!(connack, [0x20, 2, 0, 0], "a phone on another address connects at once");
}

/// Connects to the broker from `local` with the phone's certificate; the
/// CONNACK's bytes.
async fn mqtt_connect_from(app: &TestApp, paired: &Value, local: IpAddr) -> [u8; 4] {
    let cert = (paired["mqtt_client_cert"].as_str().unwrap(), paired["mqtt_client_key"].as_str().unwrap());
    let config = phone::tls_config(paired["mqtt_ca_cert"].as_str().unwrap(), Some(cert));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(local, 0)).unwrap();
    let tcp = socket.connect(([127, 0, 0, 1], app.mqtt_port).into()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let attempt = async {
        let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.unwrap();
        let id = paired["device_id"].as_str().unwrap();
        tls.write_all(&phone::connect_packet(id, paired["jwt_token"].as_str().unwrap(), 60)).await.unwrap();
        let mut ack = [0u8; 4];
        tls.read_exact(&mut ack).await.unwrap();
        ack
    };
    tokio::time::timeout(Duration::from_secs(5), attempt).await.expect("CONNACK within 5 s")
}

#[tokio::test]
async fn junk_methods_do_not_grow_the_metrics() {
    let app = spawn_app().await;
    for i in 0..200 {
        let method = reqwest::Method::from_bytes(format!("JUNK{i}{}", "X".repeat(2000)).as_bytes()).unwrap();
        let _ = app.client.request(method, app.url(&format!("/nowhere/{i}"))).send().await;
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("JUNK") && !metrics.contains("/nowhere"), "labels come from a fixed set");
    assert!(metrics.len() < 64 * 1024, "{} bytes", metrics.len());
    assert!(metrics.contains(r#"route="unmatched",method="other""#), "{metrics}");
}

#[tokio::test]
async fn a_new_user_agent_does_not_reset_the_wrong_token_budget() {
    let app = spawn_with(Options::default().arg("--rate-invites-per-minute").arg("20")).await;
    let mut statuses = Vec::new();
    for i in 0..60 {
        let request = app
            .client
            .get(app.url("/admin/status"))
            .header("x-admin-token", "tdadm_wrong")
            .header("user-agent", format!("agent-{i}"));
        statuses.push(send(request).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 20, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 40, "{statuses:?}");
    let audited = app.audit().iter().filter(|e| e["action"] == "admin.auth").count();
    assert_eq!(audited, 20, "refused guesses write no audit lines");
}

#[tokio::test]
async fn malformed_accepts_are_counted_and_audited_in_aggregate() {
    let app = spawn_app().await;
    let before = app.audit().len();
    for i in 0..50 {
        let (status, _) = app.post("/phone/pairing/accept-invite", accept_body(&format!("junk{i}"), "p1", None)).await;
        assert_eq!(status, 400);
    }
    assert_eq!(app.audit().len(), before, "no audit line per junk request");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"topdog_pairing_accepts_refused_total{reason="invalid_field"} 50"#), "{metrics}");
}

#[tokio::test]
async fn a_phone_is_held_to_its_topics_and_cannot_leave_retained_messages() {
    let mut app = spawn_process().await;
    let watcher = app.pair_full("dan", "watcher").await;
    let mut watching = Phone::connect(&app, &watcher).await;
    let rss_before = rss_kib(app.pid());
    let flooder = app.pair_full("eve", "flooder").await;
    let prefix = flooder["mqtt_topic_prefix"].as_str().unwrap().to_owned();
    let other = watcher["mqtt_topic_prefix"].as_str().unwrap().to_owned();
    let tries: Vec<(&str, String, bool)> = vec![
        ("subscribe", "#".into(), false),
        ("subscribe", "+/#".into(), false),
        ("subscribe", "$SYS/#".into(), false),
        ("subscribe", format!("{other}/#"), false),
        ("publish", format!("{other}/presence"), false),
        ("publish", format!("{prefix}/presence"), true),
    ];
    for (what, topic, retain) in tries {
        let (client, mut events) = phone::phone(&app, &flooder, "flooder");
        phone::connected(&mut events).await.unwrap();
        match what {
            "subscribe" => client.subscribe(&topic, rumqttc::QoS::AtLeastOnce).await.unwrap(),
            _ => client
                .publish(&topic, rumqttc::QoS::AtLeastOnce, retain, b"{\"state\":\"online\"}".to_vec())
                .await
                .unwrap(),
        }
        phone::dropped(&mut events).await;
    }
    // 10,000 distinct topics inside its own prefix, ten connections' worth.
    for round in 0..10 {
        let (client, mut events) = phone::phone(&app, &flooder, "flooder");
        phone::connected(&mut events).await.unwrap();
        let poll = tokio::spawn(async move { phone::dropped(&mut events).await });
        for i in 0..1000 {
            let topic = format!("{prefix}/t{round}x{i}");
            if client.publish(topic, rumqttc::QoS::AtMostOnce, false, b"x".to_vec()).await.is_err() {
                break;
            }
        }
        poll.await.unwrap();
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"topdog_gateway_refused_total{reason="topic_rule"} 15"#), "{metrics}");
    assert!(metrics.contains(r#"topdog_gateway_refused_total{reason="retained"} 1"#), "{metrics}");
    let grown = rss_kib(app.pid()).saturating_sub(rss_before);
    assert!(grown < 20 * 1024, "memory grew {grown} KiB");
    // The watching phone heard none of it, and a retained message was never kept.
    notify(&app, "dan", "still private").await;
    let first = watching.next("notification").await;
    assert_eq!(first["title"], "still private");
    let late = app.pair_full("eve", "late-phone").await;
    let (client, mut events) = phone::phone(&app, &late, "late-phone");
    phone::connected(&mut events).await.unwrap();
    client.subscribe(format!("{prefix}/#"), rumqttc::QoS::AtLeastOnce).await.unwrap();
    let nothing =
        tokio::time::timeout(Duration::from_millis(500), phone::receive(&mut events, &format!("{prefix}/presence")))
            .await;
    assert!(nothing.is_err() || nothing.unwrap().is_err(), "no retained presence was kept");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Opens the event stream; the response.
async fn open_stream(app: &TestApp, token: &str) -> reqwest::Response {
    app.client.get(app.url("/phone/events")).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn event_streams_are_capped_per_device_and_end_on_revoke() {
    let mut app = spawn_app().await;
    let token = app.pair("fay", "phone-f").await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let stream = open_stream(&app, &token).await;
        assert_eq!(stream.status(), 200);
        open.push(stream);
    }
    let refused = open_stream(&app, &token).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "too_many_streams");
    let (status, _) = send(app.admin(reqwest::Method::DELETE, "/phone/devices/phone-f")).await;
    assert_eq!(status, 200);
    for mut stream in open {
        let ended = async { while let Ok(Some(_)) = stream.chunk().await {} };
        tokio::time::timeout(Duration::from_secs(5), ended).await.expect("the stream ends on revoke");
    }
}

#[tokio::test]
async fn a_trickled_body_is_cut_off() {
    let app = spawn_app().await;
    let pem = std::fs::read_to_string(app.ca_file()).unwrap();
    let config = phone::tls_config(&pem, None);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.unwrap();
    let head = "POST /phone/pairing/accept-invite HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{";
    tls.write_all(head.as_bytes()).await.unwrap();
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if tls.write_all(b" ").await.is_err() {
                return;
            }
        }
    };
    let started = std::time::Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(20), trickle).await;
    assert!(started.elapsed() < Duration::from_secs(18), "the connection was cut before the test gave up");
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer).await;
    assert!(answer.is_empty() || answer.contains("408") && answer.contains("request_timeout"), "{answer}");
}

#[tokio::test]
async fn metrics_need_the_metrics_token_when_one_is_set() {
    let mut app = spawn_with(Options::default().arg("--metrics-token").arg("scrape-secret")).await;
    let (status, refused) = app.get("/metrics").await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("admin_token_required")), "{refused}");
    let scrape = |app: &TestApp, token: &str| app.client.get(app.url("/metrics")).bearer_auth(token).send();
    assert_eq!(scrape(&app, "wrong").await.unwrap().status(), 401);
    let text = scrape(&app, "scrape-secret").await.unwrap().text().await.unwrap();
    assert!(text.contains("topdog_devices{state=\"active\"} 0"), "{text}");
    app.pair("gus", "phone-g").await;
    send(app.admin(reqwest::Method::POST, "/phone/devices/phone-g/suspend")).await;
    let text = scrape(&app, "scrape-secret").await.unwrap().text().await.unwrap();
    assert!(text.contains("topdog_devices{state=\"suspended\"} 1"), "counted, not scanned: {text}");
    let by_admin = app.admin(reqwest::Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(by_admin.status(), 200, "an admin may always scrape");
}

/// An `actions.toml` with `hold` (waits until `release` exists) and `after`
/// (writes to `marker`); the two paths.
fn holding_actions(app: &TestApp) -> (std::path::PathBuf, std::path::PathBuf) {
    let (release, marker) = (app.dir.path().join("release"), app.dir.path().join("after.txt"));
    let toml = format!(
        r#"
[[action]]
name = "hold"
description = "Waits for the test"
phrases = ["hold"]
argv = ["/bin/sh", "-c", "while [ ! -e {release} ]; do sleep 0.05; done"]
timeout_s = 60

[[action]]
name = "after"
description = "Must not run for a revoked phone"
phrases = ["after"]
argv = ["/bin/sh", "-c", "echo ran >> {marker}"]
"#,
        release = release.display(),
        marker = marker.display()
    );
    std::fs::write(app.data_dir().join("actions.toml"), toml).unwrap();
    (release, marker)
}

async fn command(app: &TestApp, token: &str, id: &str, text: &str) -> (u16, Value) {
    send(app.client.post(app.url("/phone/commands")).bearer_auth(token).json(&json!({"id": id, "text": text}))).await
}

#[tokio::test]
async fn queued_commands_of_a_revoked_phone_never_run_and_the_queue_is_bounded() {
    let mut app = spawn_app().await;
    let (release, marker) = holding_actions(&app);
    let busy = app.pair("hal", "phone-h").await;
    let revoked = app.pair("ida", "phone-i").await;
    for i in 0..4 {
        let (status, started) = command(&app, &busy, &format!("h{i}"), "hold").await;
        assert_eq!((status, started["status"].as_str()), (200, Some("started")), "{started}");
    }
    let (status, queued) = command(&app, &revoked, "a1", "after").await;
    assert_eq!((status, queued["status"].as_str()), (200, Some("started")), "{queued}");
    let (status, _) = send(app.admin(reqwest::Method::DELETE, "/phone/devices/phone-i")).await;
    assert_eq!(status, 200);
    // Fill the queue: 4 running + 16 waiting, then one more is refused.
    let mut codes = Vec::new();
    for i in 4..25 {
        codes.push(command(&app, &busy, &format!("h{i}"), "hold").await.0);
    }
    assert!(codes.contains(&429), "{codes:?}");
    let (status, full) = command(&app, &busy, "h99", "hold").await;
    assert_eq!((status, full["error"].as_str()), (429, Some("command_queue_full")), "{full}");
    std::fs::write(&release, b"go").unwrap();
    let outcome = async {
        loop {
            let (_, activity) = app.admin_get("/admin/activity").await;
            let a1 = activity["commands"].as_array().unwrap().iter().find(|c| c["id"] == "a1").cloned();
            if let Some(status) = a1.as_ref().and_then(|c| c["result"]["status"].as_str()) {
                if status != "started" {
                    return status.to_owned();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(30), outcome).await.expect("the queued command was settled");
    assert_eq!(status, "rejected");
    assert!(!marker.exists(), "the revoked phone's command never ran");
}

#[tokio::test]
async fn a_phone_has_a_command_budget() {
    let mut app = spawn_app().await;
    let token = app.pair("jon", "phone-j").await;
    let mut statuses = Vec::new();
    for i in 0..35 {
        statuses.push(command(&app, &token, &format!("c{i}"), "sing me a song").await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 30, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 5, "{statuses:?}");
}

#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs curl: the test command (tests/run.sh) installs it and runs this"
)]
#[tokio::test]
async fn an_oversized_body_gets_the_same_413_over_http2_and_http1() {
    let app = spawn_app().await;
    let scratch = tempfile::tempdir().unwrap();
    let body = scratch.path().join("body.json");
    std::fs::write(&body, vec![b'a'; 1_200_000]).unwrap();
    for version in ["--http2", "--http1.1"] {
        let out = std::process::Command::new("curl")
            .args(["-s", version, "--cacert"])
            .arg(app.ca_file())
            .args(["-H", "content-type: application/json", "--data-binary"])
            .arg(format!("@{}", body.display()))
            .args(["-w", "\n%{http_code} %{http_version}"])
            .arg(app.url("/phone/pairing/accept-invite"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{version}: curl exit {:?}: {text}", out.status.code());
        let (json, status) = text.rsplit_once('\n').unwrap();
        let answer: Value = serde_json::from_str(json).unwrap();
        assert_eq!(answer["error"], "payload_too_large", "{version}");
        let expected = if version == "--http2" { "413 2" } else { "413 1.1" };
        assert_eq!(status, expected, "{version}");
    }
}
