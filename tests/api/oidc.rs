//! Console sign-in through an OpenID provider (the stand-in of `idp`):
//! people land by the role their groups give them, and the appliance
//! refuses every ID token and callback a careful relying party must
//! refuse. The real `oidc-provider` in a real browser is `tests/e2e/oidc.mjs`.

use crate::helpers::{send, spawn_with, Options, TestApp};
use crate::idp::{Idp, Key, CLIENT_ID, CLIENT_SECRET};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;

/// An appliance signing people in through `idp`; the secret's directory
/// must outlive it.
async fn appliance(idp: &Idp) -> (TestApp, tempfile::TempDir) {
    appliance_with(idp, &[]).await
}

/// As [`appliance`], with `extra` arguments.
async fn appliance_with(idp: &Idp, extra: &[&str]) -> (TestApp, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("client-secret");
    std::fs::write(&file, CLIENT_SECRET).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let options = Options::default()
        .arg("--oidc-issuer")
        .arg(&idp.issuer)
        .arg("--oidc-client-id")
        .arg(CLIENT_ID)
        .arg("--oidc-client-secret-file")
        .arg(file.to_str().unwrap())
        .arg("--oidc-admin-group")
        .arg("admins")
        .arg("--oidc-developer-group")
        .arg("devs");
    let options = extra.iter().fold(options, |o, a| o.arg(a));
    (spawn_with(options).await, secrets)
}

/// A browser: no redirects followed, cookies kept by hand.
struct Browser {
    client: reqwest::Client,
    base: String,
    login: Option<String>,
    session: Option<String>,
}

/// A sign-in begun: what the provider's authorize URL carried.
struct Begun {
    state: String,
    nonce: String,
    challenge: String,
}

fn cookie_value(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        let (pair, _) = c.split_once(';').unwrap_or((c, ""));
        pair.strip_prefix(&format!("{name}=")).map(str::to_owned)
    })
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        let pem = std::fs::read(app.ca_file()).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser { client, base: app.base.clone(), login: None, session: None }
    }

    /// Opens `/auth/login`; the provider's URL it was sent to.
    async fn begin(&mut self) -> Begun {
        let response = self.client.get(format!("{}/auth/login", self.base)).send().await.unwrap();
        assert_eq!(response.status(), 303, "{:?}", response.text().await);
        self.login = cookie_value(&response, "topdog_login");
        let location = response.headers()["location"].to_str().unwrap();
        let url = url::Url::parse(location).unwrap();
        let param = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap_or_default();
        assert_eq!((param("response_type").as_str(), param("code_challenge_method").as_str()), ("code", "S256"));
        assert_eq!(param("client_id"), CLIENT_ID);
        Begun { state: param("state"), nonce: param("nonce"), challenge: param("code_challenge") }
    }

    /// Comes back from the provider with `query`; (status, error code shown).
    async fn callback(&mut self, query: &str) -> (u16, String) {
        let mut request = self.client.get(format!("{}/auth/callback?{query}", self.base));
        if let Some(login) = &self.login {
            request = request.header("cookie", format!("topdog_login={login}"));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if let Some(session) = cookie_value(&response, "topdog_session").filter(|s| !s.is_empty()) {
            self.session = Some(session);
        }
        let page = response.text().await.unwrap();
        let code = page.split("data-state=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_owned();
        (status, code)
    }

    /// Signs in with an ID token made of `claims` signed by `key`.
    async fn sign_in(&mut self, idp: &Idp, key: &Key, claims: impl FnOnce(Value) -> Value) -> (u16, String) {
        let begun = self.begin().await;
        let code = format!("code-{}", begun.state);
        idp.grant(&code, &begun.challenge, key.sign(&claims(json!({"nonce": begun.nonce}))));
        self.callback(&format!("code={code}&state={}", begun.state)).await
    }

    /// A request with this browser's session cookie (and CSRF token).
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let cookie = format!("topdog_session={}", self.session.clone().unwrap_or_default());
        let url = format!("{}{path}", self.base);
        let (_, session) =
            send(self.client.get(format!("{}/admin/session", self.base)).header("cookie", &cookie)).await;
        let mut request = self.client.request(method, url).header("cookie", &cookie);
        if let Some(csrf) = session["csrf_token"].as_str() {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request).await
    }
}

/// Claims for `user` in `groups`, keeping the nonce the test was given.
fn person(idp: &Idp, user: &str, groups: &[&str]) -> impl FnOnce(Value) -> Value {
    let base = idp.claims(user, groups, "");
    move |given: Value| {
        let mut claims = base;
        claims["nonce"] = given["nonce"].clone();
        claims
    }
}

#[tokio::test]
async fn people_land_where_their_group_says_and_others_are_refused_with_a_clear_page() {
    let key = Key::new("k1");
    let idp = Idp::start(&[&key]).await;
    let (app, _secrets) = appliance(&idp).await;

    let mut ada = Browser::new(&app);
    assert_eq!(ada.sign_in(&idp, &key, person(&idp, "ada", &["admins", "devs"])).await, (303, String::new()));
    let (_, session) = ada.call(reqwest::Method::GET, "/admin/session", None).await;
    assert_eq!((session["role"].as_str(), session["user_id"].as_str()), (Some("admin"), Some("ada")), "{session}");
    assert_eq!(session["signed_in_with"], "oidc");
    assert_eq!(ada.call(reqwest::Method::GET, "/admin/status", None).await.0, 200, "an admin gets the console");
    let (status, made) =
        ada.call(reqwest::Method::POST, "/admin/tokens", Some(json!({"name": "ci", "scopes": ["notify"]}))).await;
    assert_eq!(status, 201, "{made}");
    let audit = app.audit();
    assert!(audit.iter().any(|l| l["actor"] == "person:ada" && l["action"] == "person.signin"), "{audit:?}");
    assert!(
        audit.iter().any(|l| l["actor"] == "person:ada" && l["action"] == "token.create"),
        "every line names the person"
    );

    let mut dev = Browser::new(&app);
    assert_eq!(dev.sign_in(&idp, &key, person(&idp, "dev", &["devs"])).await.0, 303);
    let (status, refused) = dev.call(reqwest::Method::GET, "/admin/status", None).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("admin_only")), "{refused}");
    let (status, mine) = dev.call(reqwest::Method::GET, "/my/devices", None).await;
    assert_eq!((status, mine["user_id"].as_str()), (200, Some("dev")), "{mine}");

    let mut eve = Browser::new(&app);
    assert_eq!(eve.sign_in(&idp, &key, person(&idp, "eve", &["sales"])).await, (403, "oidc_no_role".into()));
    assert!(eve.session.is_none(), "no session for someone in neither group");
    let expected = format!(":{}/auth/callback", app.port);
    let uris = idp.redirect_uris();
    assert!(uris.iter().all(|u| u.starts_with("https://") && u.ends_with(&expected)), "the base URL's: {uris:?}");
}

#[tokio::test]
async fn id_tokens_a_careful_client_must_refuse_are_refused() {
    let (key, stranger) = (Key::new("k1"), Key::new("not-published"));
    let idp = Idp::start(&[&key]).await;
    let (app, _secrets) = appliance(&idp).await;
    let now = chrono::Utc::now().timestamp();
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, &Key, Change)> = vec![
        ("another issuer", &key, Box::new(|c| c["iss"] = json!("http://127.0.0.1:1"))),
        ("another audience", &key, Box::new(|c| c["aud"] = json!("someone-else"))),
        ("expired", &key, Box::new(move |c| c["exp"] = json!(now - 600))),
        ("a wrong nonce", &key, Box::new(|c| c["nonce"] = json!("not-the-one-sent"))),
        ("an unknown key", &stranger, Box::new(|_| {})),
    ];
    for (what, signer, change) in cases {
        let mut browser = Browser::new(&app);
        let claims = person(&idp, "ada", &["admins"]);
        let outcome = browser
            .sign_in(&idp, signer, |given| {
                let mut c = claims(given);
                change(&mut c);
                c
            })
            .await;
        assert_eq!(outcome, (401, "oidc_id_token_invalid".into()), "an ID token with {what}");
        assert!(browser.session.is_none(), "no session after an ID token with {what}");
    }
    let refusals = app.audit().iter().filter(|l| l["result"] == "oidc_id_token_invalid").count();
    assert_eq!(refusals, 5, "each refusal is audited");
}

#[tokio::test]
async fn a_replayed_code_and_a_missing_wrong_or_foreign_state_are_refused() {
    let key = Key::new("k1");
    let idp = Idp::start(&[&key]).await;
    let (app, _secrets) = appliance(&idp).await;
    let mut browser = Browser::new(&app);
    let begun = browser.begin().await;
    idp.grant("the-code", &begun.challenge, key.sign(&person(&idp, "ada", &["admins"])(json!({"nonce": begun.nonce}))));
    let query = format!("code=the-code&state={}", begun.state);
    assert_eq!(browser.callback(&query).await.0, 303);
    assert_eq!(browser.callback(&query).await, (400, "oidc_state_invalid".into()), "the same callback again");

    let mut again = Browser::new(&app);
    let second = again.begin().await;
    let replayed = format!("code=the-code&state={}", second.state);
    assert_eq!(again.callback(&replayed).await, (401, "oidc_code_invalid".into()), "a code used before");
    let third = again.begin().await;
    assert_eq!(again.callback("code=x").await, (400, "oidc_state_invalid".into()), "no state");
    assert_eq!(again.callback("code=x&state=forged").await, (400, "oidc_state_invalid".into()), "a wrong state");
    let mut other = Browser::new(&app);
    let foreign = format!("code=x&state={}", third.state);
    assert_eq!(other.callback(&foreign).await, (400, "oidc_state_invalid".into()), "another browser's state");
    assert!(other.session.is_none() && again.session.is_none());
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it_but_not_for_every_forgery() {
    let (old, new, forged) = (Key::new("k1"), Key::new("k2"), Key::new("k3"));
    let idp = Idp::start(&[&old]).await;
    let (app, _secrets) = appliance(&idp).await;
    assert_eq!(Browser::new(&app).sign_in(&idp, &old, person(&idp, "ada", &["admins"])).await.0, 303);
    assert_eq!(idp.jwks_fetches(), 1);
    idp.publish(&new);
    assert_eq!(Browser::new(&app).sign_in(&idp, &new, person(&idp, "ada", &["admins"])).await.0, 303);
    assert_eq!(idp.jwks_fetches(), 2, "the unknown kid made the appliance fetch the keys again");
    let outcome = Browser::new(&app).sign_in(&idp, &forged, person(&idp, "ada", &["admins"])).await;
    assert_eq!(outcome, (401, "oidc_id_token_invalid".into()));
    assert_eq!(idp.jwks_fetches(), 2, "at most one refresh a minute");
}

#[tokio::test]
async fn a_developer_pairs_and_revokes_only_their_own_phones_and_signs_out_at_the_provider() {
    let key = Key::new("k1");
    let idp = Idp::start(&[&key]).await;
    let (mut app, _secrets) = appliance(&idp).await;
    let mut dev = Browser::new(&app);
    assert_eq!(dev.sign_in(&idp, &key, person(&idp, "dev", &["devs"])).await.0, 303);
    let (status, qr) = dev.call(reqwest::Method::POST, "/my/pairing/generate-qr", None).await;
    assert_eq!(status, 200, "{qr}");
    let (status, paired) = app.accept(qr["invite_code"].as_str().unwrap(), "dev-phone").await;
    assert_eq!((status, paired["user_id"].as_str()), (200, Some("dev")), "paired for the developer: {paired}");
    let (status, sent) =
        dev.call(reqwest::Method::POST, "/my/pairing/send-sms", Some(json!({"phone_number": "+14155552671"}))).await;
    assert_eq!(status, 200, "{sent}");
    assert!(app.console_sms(1).await.contains("/pair?code="));
    let olgas = app.pair("olga", "olgas-phone").await;
    app.admin_post("/phone/notify", json!({"user_id": "olga", "title": "for olga"})).await;
    let (status, _) = app.admin_post("/phone/notify", json!({"user_id": "dev", "title": "for dev"})).await;
    assert_eq!(status, 200);
    for user in ["olga", "dev"] {
        let asked = json!({"user_id": user, "title": format!("deploy for {user}"), "timeout_s": 3600});
        assert_eq!(app.admin_post("/phone/approvals", asked).await.0, 201);
    }
    let olgas_command = app.client.post(app.url("/phone/commands")).bearer_auth(&olgas);
    send(olgas_command.json(&json!({"id": "c1", "text": "ship the release"}))).await;
    let (_, activity) = dev.call(reqwest::Method::GET, "/my/activity", None).await;
    let titles = |kind: &str| -> Vec<String> {
        let listed = activity[kind].as_array().unwrap().iter();
        listed.filter_map(|n| n["title"].as_str().map(str::to_owned)).collect()
    };
    assert_eq!(titles("notifications"), ["for dev"], "only what was sent to them: {activity}");
    assert_eq!(titles("approvals"), ["deploy for dev"], "only what was asked of them: {activity}");
    assert_eq!(activity["commands"], json!([]), "not another user's commands: {activity}");
    let (_, olgas_activity) = app.admin_get("/admin/activity").await;
    assert!(olgas_activity.to_string().contains("ship the release"), "the command was kept: {olgas_activity}");
    let (_, mine) = dev.call(reqwest::Method::GET, "/my/devices", None).await;
    let ids: Vec<&str> = mine["devices"].as_array().unwrap().iter().filter_map(|d| d["device_id"].as_str()).collect();
    assert_eq!(ids, ["dev-phone"], "only their own");
    let (status, refused) = dev.call(reqwest::Method::DELETE, "/my/devices/olgas-phone", None).await;
    assert_eq!((status, refused["error"].as_str()), (404, Some("device_not_found")), "another user's phone");
    let (status, revoked) = dev.call(reqwest::Method::DELETE, "/my/devices/dev-phone", None).await;
    assert_eq!((status, revoked["status"].as_str()), (200, Some("revoked")), "{revoked}");
    let (_, olga) = app.admin_get("/phone/devices?user_id=olga").await;
    assert_eq!(olga["devices"][0]["status"], "active");

    let (status, out) = dev.call(reqwest::Method::DELETE, "/admin/session", None).await;
    assert_eq!(status, 200, "{out}");
    let logout = url::Url::parse(out["logout_url"].as_str().expect("the provider's logout")).unwrap();
    assert_eq!(logout.path(), "/logout");
    assert!(logout.query_pairs().any(|(k, v)| k == "id_token_hint" && v.split('.').count() == 3), "{logout}");
    let back = format!(":{}/", app.port);
    assert!(logout.query_pairs().any(|(k, v)| k == "post_logout_redirect_uri" && v.ends_with(&back)), "{logout}");
    assert_eq!(dev.call(reqwest::Method::GET, "/my/devices", None).await.0, 401, "the session has ended");
}

#[tokio::test]
async fn admins_phones_hear_of_a_phone_waiting_for_approval_and_of_one_its_user_disowned() {
    let key = Key::new("k1");
    let idp = Idp::start(&[&key]).await;
    let (mut app, _secrets) = appliance_with(&idp, &["--pairing-requires-approval"]).await;
    let mut ada = Browser::new(&app);
    assert_eq!(ada.sign_in(&idp, &key, person(&idp, "ada", &["admins"])).await.0, 303, "ada is known as an admin");
    let adas = app.pair_full("ada", "adas-phone").await;
    assert_eq!(send(app.admin(reqwest::Method::POST, "/phone/devices/adas-phone/approve")).await.0, 200);
    let mut admin_phone = crate::phone::Phone::connect(&app, &adas).await;
    let first = app.pair_full("max", "max-1").await;
    assert_eq!(admin_phone.next("notification").await["kind"], "device_pending");
    send(app.admin(reqwest::Method::POST, "/phone/devices/max-1/approve")).await;
    let mut maxs = crate::phone::Phone::connect(&app, &first).await;
    app.pair_full("max", "max-2").await;
    let waiting = admin_phone.next("notification").await;
    assert_eq!(
        (waiting["kind"].as_str(), waiting["device"]["device_id"].as_str()),
        (Some("device_pending"), Some("max-2"))
    );
    let alert = maxs.next("notification").await;
    assert_eq!((alert["kind"].as_str(), alert["device"]["device_id"].as_str()), (Some("new_device"), Some("max-2")));
    let path = format!("/phone/notifications/{}/not-me", alert["id"].as_str().unwrap());
    let (status, _) = send(app.client.post(app.url(&path)).bearer_auth(first["jwt_token"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    let told = admin_phone.next("notification").await;
    assert_eq!((told["kind"].as_str(), told["device"]["device_id"].as_str()), (Some("device_disowned"), Some("max-2")));
    let (_, listed) = app.admin_get("/phone/devices?user_id=max").await;
    let states: Vec<(&str, &str)> = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["device_id"].as_str().unwrap(), d["status"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&("max-2", "revoked")) && states.contains(&("max-1", "active")), "{states:?}");
}
