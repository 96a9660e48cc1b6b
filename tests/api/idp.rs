//! A stand-in OpenID provider on loopback for the sign-in tests that need
//! ID tokens a real provider would never issue (another issuer, another
//! audience, expired, a wrong nonce, an unknown key). It checks what a
//! real one checks of the appliance: the client's secret (HTTP Basic), the
//! redirect URI, the PKCE verifier against the challenge (S256), and that
//! a code is used once. The test decides, per code, what the ID token says.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use warp::Filter;

/// The client the appliance is registered as.
pub const CLIENT_ID: &str = "topdog-console";
/// Its secret.
pub const CLIENT_SECRET: &str = "s3cret-of-the-console-client";

/// A signing key of the provider.
pub struct Key {
    kid: String,
    private_pem: String,
    jwk: Value,
}

impl Key {
    /// A new 2048-bit RSA key named `kid`.
    pub fn new(kid: &str) -> Key {
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("RSA key");
        let public = private.to_public_key();
        let b64 = |bytes: Vec<u8>| URL_SAFE_NO_PAD.encode(bytes);
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": b64(public.n().to_bytes_be()), "e": b64(public.e().to_bytes_be())});
        let private_pem = private.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).expect("PEM").to_string();
        Key { kid: kid.to_owned(), private_pem, jwk }
    }

    /// `claims` signed with this key (RS256, its `kid`).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).expect("key");
        jsonwebtoken::encode(&header, claims, &key).expect("signed")
    }
}

/// What a code will be exchanged for.
struct Grant {
    challenge: String,
    id_token: String,
    used: bool,
}

#[derive(Default)]
struct Inner {
    grants: HashMap<String, Grant>,
    published: Vec<Value>,
    jwks_fetches: usize,
    redirect_uris: Vec<String>,
}

/// The running stand-in.
#[derive(Clone)]
pub struct Idp {
    /// Its issuer URL.
    pub issuer: String,
    inner: Arc<Mutex<Inner>>,
}

impl Idp {
    /// Starts on a free loopback port, publishing `keys`.
    pub async fn start(keys: &[&Key]) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            published: keys.iter().map(|k| k.jwk.clone()).collect(),
            ..Default::default()
        }));
        let idp = Idp { issuer, inner };
        let routes = idp.routes();
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        idp
    }

    /// Publishes `key` too (a rotation).
    pub fn publish(&self, key: &Key) {
        self.inner.lock().unwrap().published.push(key.jwk.clone());
    }

    /// How often the key set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.inner.lock().unwrap().jwks_fetches
    }

    /// The redirect URIs token requests carried.
    pub fn redirect_uris(&self) -> Vec<String> {
        self.inner.lock().unwrap().redirect_uris.clone()
    }

    /// Lets `code` be exchanged once, with the PKCE `challenge`, for `id_token`.
    pub fn grant(&self, code: &str, challenge: &str, id_token: String) {
        let grant = Grant { challenge: challenge.to_owned(), id_token, used: false };
        self.inner.lock().unwrap().grants.insert(code.to_owned(), grant);
    }

    /// Claims a real provider would issue for `user` in `groups`, for `nonce`.
    pub fn claims(&self, user: &str, groups: &[&str], nonce: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": self.issuer, "aud": CLIENT_ID, "sub": format!("sub-{user}"), "iat": now, "exp": now + 300,
            "nonce": nonce, "preferred_username": user, "name": format!("{user} (test)"), "groups": groups})
    }

    fn routes(&self) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone {
        let me = self.clone();
        let discovery = warp::path!(".well-known" / "openid-configuration").map({
            let me = me.clone();
            move || {
                let i = &me.issuer;
                warp::reply::json(&json!({
                    "issuer": i, "authorization_endpoint": format!("{i}/authorize"), "token_endpoint": format!("{i}/token"),
                    "jwks_uri": format!("{i}/jwks"), "end_session_endpoint": format!("{i}/logout"),
                    "response_types_supported": ["code"], "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                }))
            }
        });
        let jwks = warp::path!("jwks").map({
            let me = me.clone();
            move || {
                let mut inner = me.inner.lock().unwrap();
                inner.jwks_fetches += 1;
                warp::reply::json(&json!({"keys": inner.published}))
            }
        });
        let token = warp::path!("token")
            .and(warp::post())
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::body::form::<HashMap<String, String>>())
            .map(move |auth: Option<String>, form: HashMap<String, String>| me.token(auth.as_deref(), &form));
        discovery
            .map(warp::Reply::into_response)
            .or(jwks.map(warp::Reply::into_response))
            .unify()
            .or(token)
            .unify()
            .recover(|_| async {
                Ok::<_, std::convert::Infallible>(warp::Reply::into_response(warp::http::StatusCode::NOT_FOUND))
            })
            .unify()
    }

    /// The token endpoint, checking what a real provider checks.
    fn token(&self, auth: Option<&str>, form: &HashMap<String, String>) -> warp::reply::Response {
        use warp::Reply;
        let refuse = |error: &str| {
            let body = warp::reply::json(&json!({"error": error}));
            warp::reply::with_status(body, warp::http::StatusCode::BAD_REQUEST).into_response()
        };
        let basic = format!("Basic {}", STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}")));
        if auth != Some(basic.as_str()) {
            return refuse("invalid_client");
        }
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
        let mut inner = self.inner.lock().unwrap();
        inner.redirect_uris.push(field("redirect_uri").to_owned());
        let Some(grant) = inner.grants.get_mut(field("code")) else { return refuse("invalid_grant") };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
        if grant.used || field("grant_type") != "authorization_code" || challenge != grant.challenge {
            return refuse("invalid_grant");
        }
        grant.used = true;
        let body = json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": grant.id_token});
        warp::reply::json(&body).into_response()
    }
}
