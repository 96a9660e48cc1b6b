//! Behind a reverse proxy or load balancer (`--trusted-proxies`): the
//! client address a trusted proxy forwards (X-Forwarded-For, Forwarded) is
//! the one rate limits and audit lines use, and from anyone else it is
//! ignored; on the MQTT port a trusted load balancer's PROXY protocol
//! header (v1 or v2, from a stand-in that prepends it as HAProxy does)
//! carries the phone's address into the logs and the per-address caps, and
//! from an untrusted address the connection is refused.

use crate::helpers::{eventually, send, spawn_with, Options, TestApp};
use crate::phone::{connected, phone_at};
use serde_json::json;
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

async fn invite_from(app: &TestApp, forwarded: &str) -> u16 {
    let body = json!({"phone_number": "+14155552671", "user_id": "carol", "user_name": "Carol"});
    let request = app.admin(reqwest::Method::POST, "/phone/pairing/send-sms").header("x-forwarded-for", forwarded);
    send(request.json(&body)).await.0
}

async fn wrong_token_from(app: &TestApp, forwarded: &str) {
    let request = app.client.get(app.url("/admin/status")).header("x-admin-token", "tdadm_wrong");
    let (status, _) = send(request.header("x-forwarded-for", forwarded)).await;
    assert_eq!(status, 401);
}

fn last_auth_failure(app: &TestApp) -> String {
    let audit = app.audit();
    let line = audit.iter().rev().find(|e| e["action"] == "admin.auth").expect("an audit line");
    line["actor"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_trusted_proxys_forwarded_address_counts_for_limits_and_the_audit() {
    let options = Options::default().arg("--trusted-proxies").arg("127.0.0.1,10.0.0.0/8");
    let app = spawn_with(options.arg("--rate-invites-per-minute").arg("2")).await;
    assert_eq!(invite_from(&app, "198.51.100.1").await, 200);
    assert_eq!(invite_from(&app, "203.0.113.50, 198.51.100.1").await, 200, "a spoofed left end changes nothing");
    assert_eq!(invite_from(&app, "198.51.100.1").await, 429, "198.51.100.1 has used its two");
    assert_eq!(invite_from(&app, "198.51.100.2").await, 200, "another client behind the proxy has its own");
    wrong_token_from(&app, "198.51.100.9").await;
    assert_eq!(last_auth_failure(&app), "client:198.51.100.9");
}

#[tokio::test]
async fn forwarded_addresses_from_anyone_else_are_ignored() {
    let app = spawn_with(Options::default().arg("--rate-invites-per-minute").arg("2")).await;
    wrong_token_from(&app, "198.51.100.9").await;
    assert_eq!(last_auth_failure(&app), "client:127.0.0.1");
    assert_eq!(invite_from(&app, "198.51.100.1").await, 200);
    assert_eq!(
        invite_from(&app, "198.51.100.3").await,
        429,
        "every request is the peer's own (one wrong token and one invite)"
    );
}

/// A load balancer in TCP passthrough: listens on loopback and forwards
/// each connection to `target`, after a PROXY header naming `client`.
async fn load_balancer(target: u16, client: SocketAddr, v2: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let destination: SocketAddr = format!("127.0.0.1:{target}").parse().unwrap();
    let header = if v2 {
        ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (client, destination),
        )
        .build()
        .unwrap()
    } else {
        format!("PROXY TCP4 {} {} {} {}\r\n", client.ip(), destination.ip(), client.port(), target).into_bytes()
    };
    tokio::spawn(async move {
        while let Ok((mut phone, _)) = listener.accept().await {
            let header = header.clone();
            tokio::spawn(async move {
                let mut appliance = TcpStream::connect(destination).await.unwrap();
                appliance.write_all(&header).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut phone, &mut appliance).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn the_proxy_protocol_carries_the_phones_address_from_a_trusted_balancer_only() {
    let options =
        Options::default().process().arg("--trusted-proxies").arg("127.0.0.1").arg("--mqtt-max-per-ip").arg("1");
    let mut app = spawn_with(options).await;
    let first = app.pair_full("alice", "alice-one").await;
    let second = app.pair_full("alice", "alice-two").await;
    let third = app.pair_full("alice", "alice-three").await;
    let v1 = load_balancer(app.mqtt_port, "203.0.113.7:50001".parse().unwrap(), false).await;
    let v2 = load_balancer(app.mqtt_port, "203.0.113.8:50002".parse().unwrap(), true).await;

    let (_one, mut one_events) = phone_at(v1, &first, "alice-one");
    connected(&mut one_events).await.expect("through the v1 balancer");
    let (_two, mut two_events) = phone_at(v2, &second, "alice-two");
    connected(&mut two_events).await.expect("through the v2 balancer: another address, its own share");
    eventually(|| async {
        let log = app.log();
        if log.contains("203.0.113.7") && log.contains("203.0.113.8") {
            Ok(())
        } else {
            Err("addresses not logged".into())
        }
    })
    .await;
    let (_three, mut three_events) = phone_at(v1, &third, "alice-three");
    assert!(connected(&mut three_events).await.is_err(), "203.0.113.7 already holds its one connection");
    drop(one_events);

    let mut untrusted = spawn_with(Options::default()).await;
    let paired = untrusted.pair_full("bob", "bob-one").await;
    let through = load_balancer(untrusted.mqtt_port, "203.0.113.9:50003".parse().unwrap(), false).await;
    let (_bob, mut bob_events) = phone_at(through, &paired, "bob-one");
    assert!(connected(&mut bob_events).await.is_err(), "a PROXY header from an untrusted address is refused");
}
