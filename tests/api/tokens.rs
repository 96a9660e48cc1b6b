//! Device tokens: the JWKS verifies them, refresh rotates them, and every
//! forged, expired, unsigned or foreign token is refused.

use crate::helpers::{send, spawn_app, TestApp};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Signs `claims` with the appliance's own key file and `kid`.
fn sign_as_appliance(app: &TestApp, kid: &str, claims: &Value) -> String {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let pem = std::fs::read(app.data_dir().join("jwt-signing-key.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

#[tokio::test]
async fn tokens_verify_against_the_published_jwks() {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let mut app = spawn_app().await;
    let token = app.pair("alice", "phone-1").await;
    let (status, jwks) = app.get("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let key = &jwks["keys"][0];
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    let decoding = DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap()).unwrap();
    let data = jsonwebtoken::decode::<Value>(&token, &decoding, &Validation::new(Algorithm::RS256)).unwrap();
    let c = data.claims;
    assert_eq!((c["sub"].as_str(), c["device_id"].as_str()), (Some("alice"), Some("phone-1")));
    assert_eq!(c["fp"].as_str().unwrap().len(), 64);
    assert!(c["jti"].as_str().is_some());
    let ttl = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert_eq!(ttl, 30 * 24 * 3600, "30-day tokens by default");
}

#[tokio::test]
async fn refresh_rotates_the_token_and_revokes_the_old_one_durably() {
    let mut app = spawn_app().await;
    let old = app.pair("bob", "phone-2").await;
    let (status, refreshed) = send(app.client.post(app.url("/phone/token/refresh")).bearer_auth(&old)).await;
    assert_eq!(status, 200, "{refreshed}");
    let new = refreshed["jwt_token"].as_str().unwrap().to_owned();
    assert_ne!(claims_of(&new)["jti"], claims_of(&old)["jti"]);
    let (status, refused) = app.device_get("/phone/me", &old).await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("token_revoked")));
    assert_eq!(
        send(app.client.post(app.url("/phone/token/refresh")).bearer_auth(&old)).await.0,
        401,
        "no second refresh"
    );
    let app = app.restart().await;
    assert_eq!(app.device_get("/phone/me", &old).await.0, 401, "revocation survives a restart");
    assert_eq!(app.device_get("/phone/me", &new).await.0, 200);
}

#[tokio::test]
async fn forged_expired_unsigned_and_foreign_tokens_are_refused() {
    let mut app = spawn_app().await;
    let token = app.pair("carol", "phone-3").await;
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let claims = claims_of(&token);
    let now = chrono::Utc::now().timestamp();

    let mut expired = claims.clone();
    expired["exp"] = json!(now - 10);
    expired["iat"] = json!(now - 100);
    let mut other_user = claims.clone();
    other_user["sub"] = json!("mallory");
    let parts: Vec<&str> = token.split('.').collect();
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other_user).unwrap());
    let unsigned_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let hs256_header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#));

    let cases = [
        ("missing", String::new(), "token_missing"),
        ("garbage", "not.a.jwt".to_owned(), "token_invalid"),
        ("tampered payload", format!("{}.{forged_payload}.{}", parts[0], parts[2]), "token_invalid"),
        ("alg none", format!("{unsigned_header}.{}.", parts[1]), "token_invalid"),
        ("alg HS256", format!("{hs256_header}.{}.{}", parts[1], parts[2]), "token_invalid"),
        ("expired", sign_as_appliance(&app, &kid, &expired), "token_expired"),
        ("wrong kid", sign_as_appliance(&app, "0123456789abcdef", &claims), "token_unknown_key"),
        ("other user, valid signature", sign_as_appliance(&app, &kid, &other_user), "token_revoked"),
    ];
    for (name, bad, code) in cases {
        let request = app.client.get(app.url("/phone/me"));
        let request = if bad.is_empty() { request } else { request.bearer_auth(&bad) };
        let (status, body) = send(request).await;
        assert_eq!((status, body["error"].as_str()), (401, Some(code)), "{name}: {body}");
    }
    assert_eq!(app.device_get("/phone/me", &token).await.0, 200, "the real token still works");
}
