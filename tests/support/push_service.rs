//! A local stand-in for a browser's push service (RFC 8030), over HTTPS with
//! its own CA (the appliance is given it by `--push-ca-cert`). It checks
//! each request the way a real one does: the VAPID `Authorization` (ES256
//! against the key in `k=`, `aud` = this origin, `exp` within 24 h, `sub`
//! present), `Content-Encoding: aes128gcm`, `TTL`, `Urgency` and `Topic`;
//! and it decrypts the body with the subscription's private key, made here
//! the way a browser makes it, by RFC 8291 written out independently of the
//! appliance's crate. It records what it accepted and can be told to answer
//! the next request of a subscription with another status. As a sink (for
//! the benchmark) it only counts the requests it answers.

use aes_gcm::aead::{Aead, KeyInit};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One push the service accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// The subscription's name.
    pub sub: String,
    /// The decrypted message.
    pub json: Value,
    pub ttl: u64,
    pub urgency: Option<String>,
    pub topic: Option<String>,
}

/// A subscription's browser side: its key pair and secret.
struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

/// A status to answer with, and its `Retry-After`.
type Scripted = (u16, Option<u64>);

#[derive(Default)]
struct Shared {
    origin: String,
    browsers: Mutex<HashMap<String, Arc<Browser>>>,
    scripts: Mutex<HashMap<String, VecDeque<Scripted>>>,
    tries: Mutex<HashMap<String, Vec<Instant>>>,
    received: Mutex<Vec<Received>>,
    refusals: Mutex<Vec<String>>,
    vapid_keys: Mutex<Vec<String>>,
    count: Option<watch::Sender<usize>>,
    /// Count requests without checking them.
    sink: bool,
}

/// The running push service.
pub struct PushService {
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
    shared: Arc<Shared>,
    count: watch::Receiver<usize>,
}

impl PushService {
    /// Starts it on 127.0.0.1 with a new CA.
    pub async fn start() -> PushService {
        PushService::started(false).await
    }

    /// Starts one that answers every request 201 and only counts them.
    #[allow(dead_code)]
    pub async fn sink() -> PushService {
        PushService::started(true).await
    }

    async fn started(sink: bool) -> PushService {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "push service test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
        let ca_file = dir.path().join("push-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, count) = watch::channel(0);
        let shared =
            Arc::new(Shared { origin: format!("https://{addr}"), count: Some(tx), sink, ..Default::default() });
        tokio::spawn(serve(listener, acceptor, shared.clone()));
        PushService { _dir: dir, ca_file, shared, count }
    }

    /// The CA file the appliance is to trust.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// How many pushes were accepted.
    #[allow(dead_code)]
    pub fn count(&self) -> usize {
        *self.count.borrow()
    }

    /// A new subscription `name` as the browser gives it to the app.
    pub fn subscribe(&self, name: &str) -> Value {
        let browser = Browser { secret: p256::SecretKey::random(&mut rand::rngs::OsRng), auth: rand::random() };
        let public = browser.secret.public_key().to_encoded_point(false);
        let body = json!({
            "endpoint": format!("{}/push/{name}", self.shared.origin),
            "expirationTime": null,
            "keys": {"p256dh": URL_SAFE_NO_PAD.encode(public.as_bytes()), "auth": URL_SAFE_NO_PAD.encode(browser.auth)},
        });
        self.shared.browsers.lock().unwrap().insert(name.to_owned(), Arc::new(browser));
        body
    }

    /// Answers the next request to `name` with `status` (and `Retry-After`).
    pub fn answer_next(&self, name: &str, status: u16, retry_after: Option<u64>) {
        self.shared.scripts.lock().unwrap().entry(name.to_owned()).or_default().push_back((status, retry_after));
    }

    /// Every push accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The pushes to `name`.
    pub fn received_by(&self, name: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.sub == name).collect()
    }

    /// When each request to `name` arrived (answered or not).
    pub fn tries(&self, name: &str) -> Vec<Instant> {
        self.shared.tries.lock().unwrap().get(name).cloned().unwrap_or_default()
    }

    /// Requests that failed a check, and why.
    pub fn refusals(&self) -> Vec<String> {
        self.shared.refusals.lock().unwrap().clone()
    }

    /// The VAPID keys (`k=`) requests carried.
    pub fn vapid_keys(&self) -> Vec<String> {
        self.shared.vapid_keys.lock().unwrap().clone()
    }

    /// Waits until `n` pushes were accepted in all.
    pub async fn wait_for(&mut self, n: usize) -> Vec<Received> {
        let waited = tokio::time::timeout(Duration::from_secs(30), self.count.wait_for(|c| *c >= n)).await.is_ok();
        assert!(waited, "{n} pushes expected, got {:?}; refused: {:?}", self.received(), self.refusals());
        self.received()
    }
}

async fn serve(listener: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor, shared: Arc<Shared>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let (acceptor, shared) = (acceptor.clone(), shared.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(tls);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

type Answer = hyper::Response<http_body_util::Full<bytes::Bytes>>;

fn answer(status: u16, retry_after: Option<u64>) -> Answer {
    let mut response = hyper::Response::builder().status(status);
    if let Some(seconds) = retry_after {
        response = response.header("retry-after", seconds.to_string());
    }
    response.body(http_body_util::Full::new(bytes::Bytes::new())).unwrap()
}

async fn handle(shared: &Shared, req: hyper::Request<Incoming>) -> Answer {
    if shared.sink {
        let _ = req.into_body().collect().await;
        if let Some(count) = &shared.count {
            count.send_modify(|n| *n += 1);
        }
        return answer(201, None);
    }
    let name = req.uri().path().strip_prefix("/push/").unwrap_or_default().to_owned();
    shared.tries.lock().unwrap().entry(name.clone()).or_default().push(Instant::now());
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let checked = check(shared, &name, &parts, &body);
    let received = match checked {
        Ok(received) => received,
        Err((status, why)) => {
            shared.refusals.lock().unwrap().push(format!("{name}: {why}"));
            return answer(status, None);
        }
    };
    let scripted = shared.scripts.lock().unwrap().get_mut(&name).and_then(VecDeque::pop_front);
    if let Some((status, retry_after)) = scripted {
        return answer(status, retry_after);
    }
    shared.received.lock().unwrap().push(received);
    if let Some(count) = &shared.count {
        count.send_modify(|n| *n += 1);
    }
    answer(201, None)
}

fn header<'a>(parts: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The checks a push service makes, then the decryption.
fn check(shared: &Shared, name: &str, parts: &http::request::Parts, body: &[u8]) -> Result<Received, (u16, String)> {
    if parts.method != http::Method::POST {
        return Err((405, format!("method {}", parts.method)));
    }
    let browser = shared.browsers.lock().unwrap().get(name).cloned().ok_or((404, "unknown subscription".into()))?;
    let key = check_vapid(shared, header(parts, "authorization").unwrap_or_default()).map_err(|why| (401, why))?;
    shared.vapid_keys.lock().unwrap().push(key);
    if header(parts, "content-encoding") != Some("aes128gcm") {
        return Err((415, "Content-Encoding is not aes128gcm".into()));
    }
    let ttl = header(parts, "ttl").and_then(|t| t.parse::<u64>().ok()).ok_or((400, "no numeric TTL".into()))?;
    let urgency = header(parts, "urgency").map(str::to_owned);
    if urgency.as_deref().is_some_and(|u| !["very-low", "low", "normal", "high"].contains(&u)) {
        return Err((400, format!("Urgency {urgency:?}")));
    }
    let topic = header(parts, "topic").map(str::to_owned);
    let topic_ok = |t: &str| t.len() <= 32 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if topic.as_deref().is_some_and(|t| !topic_ok(t)) {
        return Err((400, format!("Topic {topic:?}")));
    }
    if body.len() > 4096 {
        return Err((413, format!("{} bytes", body.len())));
    }
    let plain = decrypt(&browser, body).map_err(|why| (400, why))?;
    let json = serde_json::from_slice(&plain).map_err(|e| (400, format!("not JSON: {e}")))?;
    Ok(Received { sub: name.to_owned(), json, ttl, urgency, topic })
}

/// `vapid t=JWT, k=KEY`: the JWT verified with the key; the key returned.
fn check_vapid(shared: &Shared, value: &str) -> Result<String, String> {
    let rest = value.strip_prefix("vapid ").ok_or("not a vapid Authorization")?;
    let mut jwt = None;
    let mut k = None;
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => jwt = Some(v.to_owned()),
            Some(("k", v)) => k = Some(v.to_owned()),
            _ => return Err(format!("unexpected {part:?}")),
        }
    }
    let (jwt, k) = (jwt.ok_or("no t=")?, k.ok_or("no k=")?);
    let raw = URL_SAFE_NO_PAD.decode(&k).map_err(|e| e.to_string())?;
    if raw.len() != 65 || raw[0] != 4 {
        return Err("k is not an uncompressed P-256 point".into());
    }
    let x = URL_SAFE_NO_PAD.encode(&raw[1..33]);
    let y = URL_SAFE_NO_PAD.encode(&raw[33..]);
    let key = jsonwebtoken::DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[&shared.origin]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(&jwt, &key, &validation).map_err(|e| format!("JWT: {e}"))?.claims;
    let exp = claims["exp"].as_i64().ok_or("exp")?;
    if exp > chrono::Utc::now().timestamp() + 24 * 3600 {
        return Err(format!("exp {exp} is more than 24 h away"));
    }
    let sub = claims["sub"].as_str().unwrap_or_default();
    if !sub.starts_with("mailto:") && !sub.starts_with("https:") {
        return Err(format!("sub {sub:?}"));
    }
    Ok(k)
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm).expand(info, out).unwrap();
}

/// RFC 8291 §3.4 and RFC 8188: one `aes128gcm` record.
fn decrypt(browser: &Browser, body: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() < 21 {
        return Err("too short for a header".into());
    }
    let (salt, rs, idlen) = (&body[..16], u32::from_be_bytes(body[16..20].try_into().unwrap()), body[20] as usize);
    let keyid = body.get(21..21 + idlen).ok_or("short key id")?;
    let ciphertext = &body[21 + idlen..];
    if idlen != 65 || ciphertext.len() + 21 + idlen > rs as usize + 86 {
        return Err(format!("key id of {idlen} bytes or record size {rs}"));
    }
    let sender = p256::PublicKey::from_sec1_bytes(keyid).map_err(|e| e.to_string())?;
    let shared = p256::ecdh::diffie_hellman(browser.secret.to_nonzero_scalar(), sender.as_affine());
    let receiver = browser.secret.public_key().to_encoded_point(false);
    let info = [b"WebPush: info\0".as_slice(), receiver.as_bytes(), keyid].concat();
    let mut ikm = [0u8; 32];
    hkdf(&browser.auth, shared.raw_secret_bytes(), &info, &mut ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    hkdf(salt, &ikm, b"Content-Encoding: aes128gcm\0", &mut cek);
    hkdf(salt, &ikm, b"Content-Encoding: nonce\0", &mut nonce);
    let cipher = aes_gcm::Aes128Gcm::new_from_slice(&cek).unwrap();
    let mut padded = cipher.decrypt(&nonce.into(), ciphertext).map_err(|_| "does not decrypt".to_owned())?;
    while padded.last() == Some(&0) {
        padded.pop();
    }
    match padded.pop() {
        Some(2) => Ok(padded),
        other => Err(format!("last record's delimiter is {other:?}, not 2")),
    }
}
