//! The shared MQTT phone for integration tests: rumqttc over real TLS with
//! the certificate and token from an accept-invite answer, plus `Phone`, a
//! connected, subscribed phone that speaks the appliance's message types.

use crate::helpers::TestApp;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(15);

pub fn tls_config(ca_pem: &str, cert_pem: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match cert_pem {
        Some((cert, key)) => {
            let chain = rustls_pemfile::certs(&mut cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
            let key = rustls_pemfile::private_key(&mut key.as_bytes()).unwrap().unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    })
}

/// A phone client for the accept answer `paired`, logging in as `client_id`.
pub fn phone(app: &TestApp, paired: &Value, client_id: &str) -> (AsyncClient, EventLoop) {
    phone_at(app.mqtt_port, paired, client_id)
}

/// The same, through whatever listens on `port` (a load balancer).
pub fn phone_at(port: u16, paired: &Value, client_id: &str) -> (AsyncClient, EventLoop) {
    let cert = (paired["mqtt_client_cert"].as_str().unwrap(), paired["mqtt_client_key"].as_str().unwrap());
    let config = tls_config(paired["mqtt_ca_cert"].as_str().unwrap(), Some(cert));
    client_at(port, config, client_id, paired["jwt_token"].as_str().unwrap())
}

pub fn client(
    app: &TestApp,
    config: Arc<rustls::ClientConfig>,
    client_id: &str,
    password: &str,
) -> (AsyncClient, EventLoop) {
    client_at(app.mqtt_port, config, client_id, password)
}

fn client_at(
    port: u16,
    config: Arc<rustls::ClientConfig>,
    client_id: &str,
    password: &str,
) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(60));
    options.set_credentials(client_id, password);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    AsyncClient::new(options, 16)
}

/// Polls until CONNACK; Err when the connection fails first.
pub async fn connected(events: &mut EventLoop) -> Result<(), String> {
    let wait = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) if ack.code == rumqttc::ConnectReturnCode::Success => {
                    return Ok(())
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return Err(format!("{:?}", ack.code)),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    tokio::time::timeout(WAIT, wait).await.unwrap_or_else(|_| Err("timed out".into()))
}

/// Polls until a publish arrives on `topic`, or the connection ends.
pub async fn receive(events: &mut EventLoop, topic: &str) -> Result<Vec<u8>, String> {
    let wait = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic => return Ok(p.payload.to_vec()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    tokio::time::timeout(WAIT, wait).await.unwrap_or_else(|_| Err("timed out".into()))
}

/// Polls until the connection fails; how long that took.
pub async fn dropped(events: &mut EventLoop) -> Duration {
    let start = std::time::Instant::now();
    let wait = async {
        loop {
            if events.poll().await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, wait).await.expect("the connection was not closed");
    start.elapsed()
}

/// A connected phone subscribed to its own topics (QoS 2), with a clean
/// session as the appliance recommends: what it missed comes from the
/// appliance's replay after it says it is online.
pub struct Phone {
    pub client: AsyncClient,
    pub events: EventLoop,
    pub prefix: String,
    /// Messages received while waiting for another type: (type, message).
    held: Vec<(String, Value)>,
}

impl Phone {
    /// Connects as the phone of accept answer `paired` and subscribes.
    pub async fn connect(app: &TestApp, paired: &Value) -> Phone {
        let (client, mut events) = phone(app, paired, paired["device_id"].as_str().unwrap());
        connected(&mut events).await.expect("phone connected");
        let prefix = paired["mqtt_topic_prefix"].as_str().unwrap().to_owned();
        client.subscribe(format!("{prefix}/#"), QoS::ExactlyOnce).await.unwrap();
        let mut phone = Phone { client, events, prefix, held: Vec::new() };
        phone.until(|p| matches!(p, Packet::SubAck(_))).await.expect("subscribed");
        phone
    }

    /// Polls until a packet satisfies `pred`.
    async fn until(&mut self, pred: impl Fn(&Packet) -> bool) -> Result<Packet, String> {
        let wait = async {
            loop {
                match self.events.poll().await {
                    Ok(Event::Incoming(p)) if pred(&p) => return Ok(p),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        tokio::time::timeout(WAIT, wait).await.unwrap_or_else(|_| Err("timed out".into()))
    }

    /// Publishes a message of type `kind` (QoS 1).
    pub async fn send(&mut self, kind: &str, message: Value) {
        let topic = format!("{}/{kind}", self.prefix);
        self.client.publish(topic, QoS::AtLeastOnce, false, message.to_string().into_bytes()).await.unwrap();
    }

    /// Publishes a message of type `kind` and polls until the appliance
    /// acknowledged it.
    pub async fn send_acked(&mut self, kind: &str, message: Value) {
        self.send(kind, message).await;
        self.until(|p| matches!(p, Packet::PubAck(_))).await.expect("acknowledged");
    }

    /// Says it is online, with the last notification id it has.
    pub async fn online(&mut self, since: Option<&str>) {
        let mut presence = json!({"state": "online"});
        if let Some(since) = since {
            presence["since"] = json!(since);
        }
        self.send("presence", presence).await;
    }

    /// The next message of type `kind` the appliance sends (others that
    /// arrive meanwhile are held for their own `next`).
    pub async fn next(&mut self, kind: &str) -> Value {
        if let Some(i) = self.held.iter().position(|(k, _)| k == kind) {
            return self.held.remove(i).1;
        }
        let prefix = format!("{}/", self.prefix);
        loop {
            let packet = self.until(|p| matches!(p, Packet::Publish(m) if m.topic.starts_with(&prefix))).await;
            let Ok(Packet::Publish(m)) = packet else { panic!("no {kind} message: {packet:?}") };
            let message: Value = serde_json::from_slice(&m.payload).expect("JSON message");
            let got = m.topic[prefix.len()..].to_owned();
            if got == kind {
                return message;
            }
            self.held.push((got, message));
        }
    }

    /// The next `n` messages of type `kind`.
    pub async fn next_n(&mut self, kind: &str, n: usize) -> Vec<Value> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            got.push(self.next(kind).await);
        }
        got
    }

    /// Polls until the connection ends; how long that took.
    pub async fn dropped(&mut self) -> Duration {
        dropped(&mut self.events).await
    }
}

/// A CONNECT (MQTT 3.1.1, clean session) as a phone sends it: `id` as
/// client id and user name, `password`, a keep-alive of `keep_alive` s.
pub fn connect_packet(id: &str, password: &str, keep_alive: u16) -> Vec<u8> {
    let field = |s: &str| [&(s.len() as u16).to_be_bytes()[..], s.as_bytes()].concat();
    let header = [&[0, 4][..], b"MQTT", &[4, 0xC2], &keep_alive.to_be_bytes()].concat();
    let body = [header, field(id), field(id), field(password)].concat();
    let (mut length, mut packet) = (body.len(), vec![0x10]);
    loop {
        let byte = (length % 128) as u8;
        length /= 128;
        packet.push(if length > 0 { byte | 0x80 } else { byte });
        if length == 0 {
            break;
        }
    }
    [packet, body].concat()
}
