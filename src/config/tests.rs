//! The layering of flags, environment, file and defaults, and the checks
//! of values.

use super::*;

fn file(text: &str) -> Settings {
    toml::from_str(text).unwrap()
}

#[test]
fn flags_win_over_file_and_file_over_defaults() {
    let cli = Settings { invite_expiry: Some("3s".parse().unwrap()), ..Default::default() };
    let lower = file("invite_expiry = \"9m\"\nqr_expiry = \"2m\"\nbase_url = \"https://td.example.com\"");
    let c = Config::resolve(cli.or(lower)).unwrap();
    assert_eq!(c.pairing.invite_expiry, Duration::from_secs(3));
    assert_eq!(c.pairing.qr_expiry, Duration::from_secs(120));
    assert_eq!(c.base_url.unwrap().as_str(), "https://td.example.com/");
    assert!(c.devices_require_admin);
    assert_eq!(c.sms, SmsConfig::Console { show_links: false });
}

#[test]
fn every_field_keeps_its_value_through_the_layers() {
    let all = file(
        r#"
        data_dir = "/d"
        http_addr = "127.0.0.1:1"
        mqtt_addr = "127.0.0.1:2"
        mqtt_max_per_ip = 3
        mqtt_publish_rate = 7
        mqtt_public_host = "m.example.com"
        tls_cert = "/c.pem"
        tls_key = "/k.pem"
        tls_san = ["a.example.com"]
        acme_domain = ["pair.example.com"]
        acme_email = "ops@example.com"
        acme_directory = "https://acme.example.com/directory"
        acme_staging = true
        acme_ca_cert = "/acme-ca.pem"
        acme_http_addr = ":8080"
        acme_challenge = "http-01"
        database_url = "postgres://topdog@db.example.com/topdog"
        database_ca_cert = "/db-ca.pem"
        node_name = "node-7"
        oidc_issuer = "https://id.example.com"
        oidc_client_id = "topdog"
        oidc_client_secret_file = "/oidc-secret"
        oidc_ca_cert = "/oidc-ca.pem"
        oidc_scopes = ["profile", "groups"]
        oidc_role_claim = "roles"
        oidc_admin_group = "ops"
        oidc_developer_group = "devs"
        oidc_user_claim = "email"
        insecure_http = true
        base_url = "https://td.example.com"
        invite_expiry = "9m"
        qr_expiry = "2m"
        qr_require_otp = true
        qr_embed_otp = true
        pairing_requires_approval = true
        devices_require_admin = false
        admin_token = "0123456789abcdef0123456789abcdef"
        jwt_ttl = "1day"
        sms_provider = "webhook"
        sms_allowed_countries = ["US"]
        twilio_account_sid = "AC1"
        twilio_auth_token = "t"
        twilio_phone_number = "+14155550000"
        twilio_api_base = "https://twilio.example.com"
        aws_region = "eu-west-1"
        aws_endpoint_url_sns = "https://sns.example.com"
        aws_access_key_id = "AKIA"
        aws_secret_access_key = "s"
        aws_session_token = "st"
        sms_webhook_url = "https://hook.example.com"
        sms_command = "/bin/true"
        rate_invites_per_minute = 4
        rate_accepts_per_minute = 5
        rate_token_requests_per_minute = 6
        trusted_proxies = ["10.0.0.0/8"]
        sweep_interval = "1m"
        notification_retention = "2days"
        anthropic_api_key = "ak"
        anthropic_base_url = "https://llm.example.com"
        llm_model = "m"
        long_poll_max = "20s"
        metrics_token = "mt"
        http_max_per_ip = 6
        push_allowed_hosts = ["ntfy.corp.example"]
        push_ca_cert = "/push-ca.pem"
        push_contact = "mailto:ops@example.com"
        escalate_after = "3m"
        escalate_repeat = "10m"
        escalate_max_per_item = 2
        escalate_max_per_hour = 5
        sms_invite_template = "{pairing_link}"
        sms_resend_template = "again {pairing_link}"
        sms_escalation_template = "{title} {item_link}"
        "#,
    );
    let fields = |s: &Settings| serde_json::to_value(s).unwrap().as_object().unwrap().clone();
    let unset: Vec<_> = fields(&all).into_iter().filter(|(_, v)| v.is_null()).map(|(k, _)| k).collect();
    let minutes = ["invite_expiry_minutes", "qr_expiry_minutes"]; // folded into the durations
    assert!(unset.iter().all(|k| minutes.contains(&k.as_str())), "set these in the test: {unset:?}");
    assert_eq!(fields(&Settings::default().or(all.clone())), fields(&all), "the lower layer's values");
    assert_eq!(fields(&all.clone().or(Settings::default())), fields(&all), "the higher layer's values");
}

#[test]
fn original_minute_variables_apply_below_the_duration_flags() {
    let s = Settings { invite_expiry_minutes: Some(7), ..Default::default() };
    assert_eq!(Config::resolve(s).unwrap().pairing.invite_expiry, Duration::from_secs(420));
}

#[test]
fn minute_variables_of_a_higher_layer_beat_durations_of_a_lower_one() {
    let env = Settings { invite_expiry_minutes: Some(7), ..Default::default() };
    let c = Config::resolve(env.or(file("invite_expiry = \"9m\""))).unwrap();
    assert_eq!(c.pairing.invite_expiry, Duration::from_secs(420));
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    assert!(toml::from_str::<Settings>("no_such_key = 1").is_err());
    let s = Settings { sms_provider: Some("pigeon".into()), ..Default::default() };
    assert!(matches!(Config::resolve(s), Err(ConfigError::Invalid { setting: "sms_provider", .. })));
    let s = Settings { sms_provider: Some("twilio".into()), ..Default::default() };
    assert!(Config::resolve(s).is_err());
}

#[test]
fn twilio_is_chosen_when_its_account_is_set() {
    let s = file("twilio_account_sid = \"AC1\"\ntwilio_auth_token = \"t\"\ntwilio_phone_number = \"+14155550000\"");
    assert!(matches!(Config::resolve(s).unwrap().sms, SmsConfig::Twilio { .. }));
}

#[test]
fn the_shipped_example_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("topdog.example.toml");
    let c = Config::load(Settings::default(), Some(&path)).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/topdog"));
    assert_eq!(c.pairing.invite_expiry, Duration::from_secs(900));
}

#[test]
fn secrets_do_not_show_in_debug() {
    let token = "hunter2-hunter2-hunter2-hunter2-hunter2";
    let s = Settings { admin_token: Some(Secret(token.into())), ..Default::default() };
    assert!(!format!("{:?}", Config::resolve(s).unwrap()).contains(token));
}

#[test]
fn a_short_admin_token_is_refused() {
    let s = Settings { admin_token: Some(Secret("hunter2".into())), ..Default::default() };
    assert!(matches!(Config::resolve(s), Err(ConfigError::Invalid { setting: "admin_token", .. })));
}

#[test]
fn an_openid_issuer_must_be_https_or_on_loopback_and_needs_its_client() {
    let with = |text: &str| Config::resolve(file(text));
    let client = "oidc_client_id = \"c\"\noidc_client_secret_file = \"/s\"";
    let ok = with(&format!("oidc_issuer = \"https://id.example.com/\"\n{client}")).unwrap();
    let oidc = ok.oidc.unwrap();
    assert_eq!((oidc.issuer.as_str(), oidc.role_claim.as_str()), ("https://id.example.com", "groups"));
    assert!(with(&format!("oidc_issuer = \"http://127.0.0.1:9000\"\n{client}")).is_ok(), "a provider on loopback");
    let plain = with(&format!("oidc_issuer = \"http://id.example.com\"\n{client}"));
    assert!(matches!(plain, Err(ConfigError::Invalid { setting: "oidc_issuer", .. })));
    let no_client = with("oidc_issuer = \"https://id.example.com\"");
    assert!(matches!(no_client, Err(ConfigError::Invalid { setting: "oidc_client_id", .. })));
    let orphan = with("oidc_client_id = \"c\"");
    assert!(matches!(orphan, Err(ConfigError::Invalid { setting: "oidc_issuer", .. })));
}
