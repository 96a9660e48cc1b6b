//! Local stand-ins for the outside services. Each checks a request the way
//! the real service does (Twilio: basic auth and form fields; SNS: the SigV4
//! signature, recomputed here independently of `aws-sigv4`; webhooks: the
//! JSON shape; Anthropic: key, version header and tool request), records
//! what it accepted, and can be told to fail.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use warp::http::{HeaderMap, StatusCode};
use warp::Filter;

/// One message a fake accepted.
#[derive(Debug, Clone)]
pub struct Message {
    pub to: String,
    pub body: String,
}

/// A running fake service.
#[derive(Clone)]
pub struct Fake {
    pub addr: SocketAddr,
    messages: Arc<Mutex<Vec<Message>>>,
    /// Every request seen, accepted or refused.
    seen: Arc<Mutex<Vec<String>>>,
    count: watch::Receiver<usize>,
    fail_next: Arc<AtomicUsize>,
}

struct Recorder {
    messages: Arc<Mutex<Vec<Message>>>,
    seen: Arc<Mutex<Vec<String>>>,
    count: watch::Sender<usize>,
    fail_next: Arc<AtomicUsize>,
}

impl Recorder {
    fn saw(&self, raw: String) {
        self.seen.lock().unwrap().push(raw);
    }
    fn accept(&self, to: String, body: String) {
        self.messages.lock().unwrap().push(Message { to, body });
        self.count.send_modify(|n| *n += 1);
    }
    fn should_fail(&self) -> bool {
        self.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

impl Fake {
    /// The base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// Messages accepted so far.
    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }
    /// Raw requests seen so far (including refused ones).
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
    /// Makes the next `n` requests fail the way the service fails.
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }
    /// Waits until `n` messages were accepted.
    pub async fn wait_for(&mut self, n: usize) -> Vec<Message> {
        tokio::time::timeout(Duration::from_secs(30), self.count.wait_for(|c| *c >= n))
            .await
            .expect("fake waited")
            .expect("fake");
        self.messages()
    }
}

async fn serve<F>(make: impl FnOnce(Arc<Recorder>) -> F) -> Fake
where
    F: Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static,
{
    let (tx, count) = watch::channel(0);
    let messages = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fail_next = Arc::new(AtomicUsize::new(0));
    let recorder =
        Arc::new(Recorder { messages: messages.clone(), seen: seen.clone(), count: tx, fail_next: fail_next.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(warp::serve(make(recorder)).incoming(listener).run());
    Fake { addr, messages, seen, count, fail_next }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> warp::reply::Response {
    let r = warp::reply::with_status(body, status);
    warp::Reply::into_response(warp::reply::with_header(r, "content-type", content_type))
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Twilio's Messages API for one account.
pub async fn twilio(sid: &'static str, token: &'static str, from: &'static str) -> Fake {
    serve(move |rec| {
        warp::post()
            .and(warp::path!("2010-04-01" / "Accounts" / String / "Messages.json"))
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::body::bytes())
            .map(move |account: String, auth: Option<String>, body: bytes::Bytes| {
                let fields = form(&body);
                rec.saw(String::from_utf8_lossy(&body).into_owned());
                let expected =
                    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{token}")));
                let json = |status: StatusCode, code: u32, message: &str| {
                    let body =
                        serde_json::json!({"code": code, "message": message, "status": status.as_u16()}).to_string();
                    reply(status, "application/json", body)
                };
                if account != sid || auth.as_deref() != Some(expected.as_str()) {
                    return json(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
                }
                if rec.should_fail() {
                    return json(
                        StatusCode::BAD_REQUEST,
                        21608,
                        "The number is unverified. Trial accounts cannot send messages to unverified numbers",
                    );
                }
                let to = fields.get("To").cloned().unwrap_or_default();
                if !to.starts_with('+') || fields.get("From").map(String::as_str) != Some(from) {
                    return json(StatusCode::BAD_REQUEST, 21211, "The 'To' number is not a valid phone number.");
                }
                let Some(text) = fields.get("Body").filter(|b| !b.is_empty()) else {
                    return json(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
                };
                rec.accept(to, text.clone());
                json(StatusCode::CREATED, 0, "queued")
            })
    })
    .await
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Recomputes an AWS SigV4 signature for a request whose path is `/` and
/// query is empty; true when `Authorization` matches.
fn sigv4_valid(headers: &HeaderMap, body: &[u8], key_id: &str, secret: &str, region: &str) -> bool {
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else { return false };
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else { return false };
    let parts: HashMap<&str, &str> = rest.split(", ").filter_map(|p| p.split_once('=')).collect();
    let (Some(credential), Some(signed), Some(signature)) =
        (parts.get("Credential"), parts.get("SignedHeaders"), parts.get("Signature"))
    else {
        return false;
    };
    let Some(amz_date) = headers.get("x-amz-date").and_then(|v| v.to_str().ok()) else { return false };
    let date = &amz_date[..8];
    let scope = format!("{date}/{region}/sns/aws4_request");
    if *credential != format!("{key_id}/{scope}") || !signed.split(';').any(|h| h == "host") {
        return false;
    }
    let canonical_headers: String = signed
        .split(';')
        .map(|name| format!("{name}:{}\n", headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").trim()))
        .collect();
    let canonical = format!("POST\n/\n\n{canonical_headers}\n{signed}\n{}", hex::encode(Sha256::digest(body)));
    let to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical.as_bytes())));
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date);
    for part in [region, "sns", "aws4_request"] {
        key = hmac(&key, part);
    }
    hex::encode(hmac(&key, &to_sign)) == *signature
}

/// SNS's Publish API for one credential.
pub async fn sns(key_id: &'static str, secret: &'static str, region: &'static str) -> Fake {
    serve(move |rec| {
        warp::post().and(warp::path::end()).and(warp::header::headers_cloned()).and(warp::body::bytes()).map(
            move |headers: HeaderMap, body: bytes::Bytes| {
                rec.saw(String::from_utf8_lossy(&body).into_owned());
                let error = |status: StatusCode, code: &str, message: &str| {
                    let xml = format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>");
                    reply(status, "text/xml", xml)
                };
                if !sigv4_valid(&headers, &body, key_id, secret, region) {
                    return error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.");
                }
                let fields = form(&body);
                let field = |k: &str| fields.get(k).cloned().unwrap_or_default();
                if field("Action") != "Publish" || field("Version") != "2010-03-31" {
                    return error(StatusCode::BAD_REQUEST, "InvalidAction", "Unknown action");
                }
                if rec.should_fail() {
                    return error(StatusCode::BAD_REQUEST, "InvalidParameter", "Invalid parameter: PhoneNumber Reason: blocked");
                }
                if !field("PhoneNumber").starts_with('+') || field("Message").is_empty() {
                    return error(StatusCode::BAD_REQUEST, "InvalidParameter", "Invalid parameter");
                }
                rec.accept(field("PhoneNumber"), field("Message"));
                let ok = "<PublishResponse><PublishResult><MessageId>4e1b2c3d</MessageId></PublishResult></PublishResponse>";
                reply(StatusCode::OK, "text/xml", ok.to_owned())
            },
        )
    })
    .await
}

/// A webhook receiver at `/sms`.
pub async fn webhook() -> Fake {
    serve(|rec| {
        warp::post().and(warp::path!("sms")).and(warp::body::json()).map(move |value: serde_json::Value| {
            rec.saw(value.to_string());
            if rec.should_fail() {
                return reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "down".into());
            }
            match (value["to"].as_str(), value["message"].as_str()) {
                (Some(to), Some(message)) => {
                    rec.accept(to.to_owned(), message.to_owned());
                    reply(StatusCode::NO_CONTENT, "text/plain", String::new())
                }
                _ => reply(StatusCode::UNPROCESSABLE_ENTITY, "text/plain", "bad shape".into()),
            }
        })
    })
    .await
}

/// A receiver of approval outcomes at `/approvals`: accepts a JSON object
/// with `id` and `status` (recorded as to = id, body = status).
pub async fn approval_hook() -> Fake {
    serve(|rec| {
        warp::post().and(warp::path!("approvals")).and(warp::body::json()).map(move |value: serde_json::Value| {
            rec.saw(value.to_string());
            match (value["id"].as_str(), value["status"].as_str()) {
                (Some(id), Some(status)) => {
                    rec.accept(id.to_owned(), status.to_owned());
                    reply(StatusCode::NO_CONTENT, "text/plain", String::new())
                }
                _ => reply(StatusCode::UNPROCESSABLE_ENTITY, "text/plain", "bad shape".into()),
            }
        })
    })
    .await
}

/// Anthropic's Messages API: checks the key and version headers and the
/// request's shape (model, a forced `choose_action` tool whose action enum
/// lists the allow-list), records the user's text, and answers with a
/// `tool_use` block choosing `action` with `params`.
pub async fn anthropic(key: &'static str, action: &'static str, params: serde_json::Value) -> Fake {
    serve(move |rec| {
        warp::post()
            .and(warp::path!("v1" / "messages"))
            .and(warp::header::headers_cloned())
            .and(warp::body::json())
            .map(move |headers: HeaderMap, body: serde_json::Value| {
                rec.saw(body.to_string());
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
                if header("x-api-key") != key {
                    let error =
                        r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
                    return reply(StatusCode::UNAUTHORIZED, "application/json", error.into());
                }
                let tool = &body["tools"][0];
                let well_formed = header("anthropic-version") == "2023-06-01"
                    && body["model"].is_string()
                    && body["max_tokens"].as_u64().is_some()
                    && body["tool_choice"]["name"] == tool["name"]
                    && tool["input_schema"]["properties"]["action"]["enum"].as_array().is_some_and(|e| !e.is_empty());
                let text = body["messages"][0]["content"].as_str().unwrap_or("");
                if !well_formed || text.is_empty() {
                    let error = r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad request"}}"#;
                    return reply(StatusCode::BAD_REQUEST, "application/json", error.into());
                }
                rec.accept("llm".into(), text.to_owned());
                let answer = serde_json::json!({
                    "id": "msg_test", "type": "message", "role": "assistant", "model": body["model"],
                    "stop_reason": "tool_use",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": tool["name"],
                                 "input": {"action": action, "params": params}}],
                });
                reply(StatusCode::OK, "application/json", answer.to_string())
            })
    })
    .await
}
