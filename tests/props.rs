//! Property tests of every parser of outside input: license keys, JWTs (and
//! the JWKS), phone numbers, MQTT topics and message payloads, the command
//! matcher, the TOML settings file and `actions.toml`. Whatever the input,
//! they answer (Ok or a refusal) and never panic; the properties that must
//! hold for valid input hold.

use proptest::prelude::*;
use std::path::Path;
use topdog::actions::{self, matcher};
use topdog::licensing::key::{self as license, VendorKeys};
use topdog::messaging::wire::{self, Kind, KINDS};
use topdog::sms::number::PhoneNumber;

fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[ -~]{0,200}", "[A-Za-z0-9._~+/=-]{0,300}"]
}

fn tokens() -> &'static topdog::auth::tokens::Tokens {
    static TOKENS: std::sync::OnceLock<(tempfile::TempDir, topdog::auth::tokens::Tokens)> = std::sync::OnceLock::new();
    &TOKENS
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let data = topdog::store::datadir::DataDir::open(dir.path()).unwrap();
            let tokens = topdog::auth::tokens::Tokens::load_or_create(
                &data,
                std::time::Duration::from_secs(3600),
                Default::default(),
            )
            .unwrap();
            (dir, tokens)
        })
        .1
}

const ACTIONS: &str = r#"
[[action]]
name = "nightly"
phrases = ["nightly build"]
argv = ["/bin/true", "{project}"]
[[action.param]]
name = "project"
values = ["alpha", "beta"]
"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn license_keys_never_panic_and_altered_keys_fail(text in arbitrary_text(), flip in 0usize..400) {
        let trusted = VendorKeys::embedded();
        let _ = license::verify(&text, &trusted);
        let _ = license::verify(&format!("TDLIC1.{text}"), &trusted);
        let key = license::generate_key();
        let payload: license::Payload = serde_json::from_value(serde_json::json!({
            "v": 1, "license_id": "L1", "customer": "C", "seats": 5, "issued": "2026-01-01", "kid": ""
        })).unwrap();
        let issued = license::issue(&key, payload);
        let trusted = VendorKeys::from_keys(&[key.verifying_key()]);
        prop_assert!(license::verify(&issued, &trusted).is_ok());
        let mut bytes = issued.clone().into_bytes();
        let at = 7 + flip % (bytes.len() - 7);
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        prop_assert!(altered == issued || license::verify(&altered, &trusted).is_err());
    }

    #[test]
    fn jwts_never_panic_and_tampering_is_refused(text in arbitrary_text(), flip in 0usize..2000) {
        let tokens = tokens();
        prop_assert!(tokens.verify(&text).is_err());
        let issued = tokens.issue(&topdog::auth::tokens::Subject { user_id: "u", device_id: "d", fingerprint: "f" }).unwrap();
        prop_assert!(tokens.verify(&issued.token).is_ok());
        let mut bytes = issued.token.clone().into_bytes();
        let at = flip % bytes.len();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        prop_assert!(altered == issued.token || tokens.verify(&altered).is_err());
        prop_assert!(tokens.jwks()["keys"][0]["kid"].is_string());
    }

    #[test]
    fn phone_numbers_never_panic_and_valid_ones_are_masked(text in arbitrary_text(), n in 2_000_000u64..9_999_999) {
        let _ = PhoneNumber::parse(&text);
        let number = format!("+1415{n:07}");
        if let Ok(parsed) = PhoneNumber::parse(&number) {
            prop_assert!(parsed.e164().starts_with('+'));
            prop_assert!(!parsed.masked().contains(&number[2..]));
        }
    }

    #[test]
    fn mqtt_topics_and_payloads_never_panic(topic in arbitrary_text(), payload in proptest::collection::vec(any::<u8>(), 0..2048), k in 0usize..8) {
        let _ = wire::parse_topic(&topic);
        let kind = KINDS[k];
        let _ = wire::parse_inbound(kind, &payload);
        let own = wire::topic("user", "device", kind);
        prop_assert_eq!(wire::parse_topic(&own).map(|o| o.kind), Some(kind));
        let spoofed = own.replace("/device/", &format!("/{}/", topic.replace('/', "")));
        prop_assert!(wire::parse_topic(&spoofed).is_none_or(|o| o.device_id == "device"));
    }

    #[test]
    fn phone_messages_with_valid_fields_parse(id in "[a-z0-9]{1,20}", text in "[ -~]{1,100}") {
        let json = serde_json::json!({"id": id, "text": text}).to_string();
        prop_assert!(matches!(wire::parse_inbound(Kind::VoiceCommand, json.as_bytes()), Ok(wire::Inbound::VoiceCommand(_))));
    }

    #[test]
    fn the_matcher_never_panics_and_only_picks_allowed_values(text in arbitrary_text()) {
        let actions = actions::parse(Path::new("actions.toml"), ACTIONS).unwrap();
        match matcher::match_text(&actions, &text) {
            matcher::Match::Ready { action, params } => {
                prop_assert_eq!(action, "nightly");
                prop_assert!(["alpha", "beta"].contains(&params["project"].as_str()));
            }
            matcher::Match::NeedsParameter { .. } | matcher::Match::Unknown => {}
        }
    }

    #[test]
    fn toml_files_never_panic(text in arbitrary_text()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("topdog.toml");
        std::fs::write(&path, &text).unwrap();
        if let Ok(settings) = topdog::config::Settings::from_file(&path) {
            let _ = topdog::config::Config::resolve(settings);
        }
        let _ = actions::parse(&path, &text);
        let _ = actions::parse(&path, &format!("{ACTIONS}\n{text}"));
    }
}
