//! SMS providers against local fakes: Twilio, SNS (SigV4 checked), webhook
//! and command; a provider failure is a 502 and leaves the invite pending
//! and resendable.

use crate::fakes;
use crate::helpers::{code_in, spawn_with, Options};
use serde_json::json;

/// An appliance configured for a Twilio account served by `fake`.
fn twilio_options(sid: &str, token: &str, fake: &fakes::Fake) -> Options {
    Options::default()
        .env("TWILIO_ACCOUNT_SID", sid)
        .env("TWILIO_AUTH_TOKEN", token)
        .env("TWILIO_PHONE_NUMBER", "+14155550000")
        .env("TWILIO_API_BASE", &fake.url())
}

#[tokio::test]
async fn twilio_delivers_the_link_with_basic_auth_and_form_fields() {
    let mut twilio = fakes::twilio("AC123", "secret-token", "+14155550000").await;
    let mut app = spawn_with(twilio_options("AC123", "secret-token", &twilio)).await;
    let (status, invite) = app.send_sms("+33 6 12 34 56 78", "alice").await;
    assert_eq!(status, 200, "{invite}");
    let sent = twilio.wait_for(1).await;
    assert_eq!(sent[0].to, "+33612345678");
    assert_eq!(code_in(&sent[0].body), invite["invite_code"].as_str().unwrap());
    let (status, _) = app.accept(&code_in(&sent[0].body), "phone-1").await;
    assert_eq!(status, 200);
    assert!(!app.output().iter().any(|l| l.contains("MOCK SMS")), "console must not be used");
    let (_, status_page) = app.admin_get("/admin/status").await;
    assert_eq!(status_page["sms_provider"], "twilio");
    let _ = &mut app;
}

#[tokio::test]
async fn provider_failure_is_a_502_and_the_invite_can_be_resent() {
    let mut twilio = fakes::twilio("AC9", "tok", "+14155550000").await;
    let app = spawn_with(twilio_options("AC9", "tok", &twilio)).await;
    twilio.fail_next(1);
    let (status, failed) = app.send_sms("+14155552671", "bob").await;
    assert_eq!((status, failed["error"].as_str()), (502, Some("sms_failed")), "{failed}");
    assert!(failed["detail"].as_str().unwrap().contains("Trial accounts cannot send"), "{failed}");
    let code = failed["invite_code"].as_str().unwrap();
    let (_, view) = app.get(&format!("/phone/pairing/invite/{code}")).await;
    assert_eq!(view["status"], "pending");
    let (status, resent) = app.admin_post(&format!("/phone/pairing/resend-sms/{code}"), json!({})).await;
    assert_eq!(status, 200, "{resent}");
    assert_eq!(code_in(&twilio.wait_for(1).await[0].body), code);
}

#[tokio::test]
async fn wrong_twilio_credentials_are_reported() {
    let twilio = fakes::twilio("AC9", "right", "+14155550000").await;
    let app = spawn_with(twilio_options("AC9", "wrong", &twilio)).await;
    let (status, failed) = app.send_sms("+14155552671", "bob").await;
    assert_eq!(status, 502);
    assert!(failed["detail"].as_str().unwrap().contains("Authenticate"), "{failed}");
    assert!(twilio.messages().is_empty());
    assert_eq!(twilio.seen().len(), 1, "the request reached the provider and was refused there");
}

#[tokio::test]
async fn sns_publish_is_sigv4_signed() {
    let mut sns = fakes::sns("AKIDTEST", "s3cr3t/key+value", "eu-west-1").await;
    let options = Options::default()
        .arg("--sms-provider")
        .arg("sns")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "s3cr3t/key+value")
        .env("AWS_ENDPOINT_URL_SNS", &sns.url());
    let app = spawn_with(options.clone()).await;
    let (status, invite) = app.send_sms("+14155552671", "carol").await;
    assert_eq!(status, 200, "{invite}");
    let sent = sns.wait_for(1).await;
    assert_eq!(sent[0].to, "+14155552671");
    assert_eq!(code_in(&sent[0].body), invite["invite_code"].as_str().unwrap());
    drop(app);

    let wrong = spawn_with(options.env("AWS_SECRET_ACCESS_KEY", "not-the-secret")).await;
    let (status, failed) = wrong.send_sms("+14155552671", "carol").await;
    assert_eq!(status, 502);
    assert!(failed["detail"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{failed}");
    assert_eq!(sns.messages().len(), 1);
}

/// `options` texting through the webhook provider's stand-in `hook`.
pub fn through_webhook(options: Options, hook: &fakes::Fake) -> Options {
    options.env("TOPDOG_SMS_PROVIDER", "webhook").env("TOPDOG_SMS_WEBHOOK_URL", &format!("{}/sms", hook.url()))
}

#[tokio::test]
async fn webhook_receives_json() {
    let mut hook = fakes::webhook().await;
    let app = spawn_with(through_webhook(Options::default(), &hook)).await;
    let (status, invite) = app.send_sms("+14155552671", "dan").await;
    assert_eq!(status, 200);
    let sent = hook.wait_for(1).await;
    assert_eq!(
        (sent[0].to.as_str(), code_in(&sent[0].body)),
        ("+14155552671", invite["invite_code"].as_str().unwrap().to_owned())
    );
    hook.fail_next(1);
    assert_eq!(app.send_sms("+14155552671", "dan").await.0, 502);
}

#[tokio::test]
async fn command_gets_the_message_on_stdin() {
    let scratch = tempfile::tempdir().unwrap();
    let script = scratch.path().join("send.sh");
    let out = scratch.path().join("out.txt");
    let env_out = scratch.path().join("env.txt");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nenv > {}\n{{ echo \"$TOPDOG_SMS_TO\"; cat; }} > {}\n", env_out.display(), out.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let secret = "a-secret-admin-token-of-32-characters-or-more";
    let app = spawn_with(
        Options::default()
            .env("TOPDOG_SMS_PROVIDER", "command")
            .env("TOPDOG_SMS_COMMAND", script.to_str().unwrap())
            .env("ADMIN_TOKEN", secret)
            .env("ANTHROPIC_API_KEY", "sk-not-for-the-sms-program"),
    )
    .await;
    let (status, invite) = app.send_sms("+14155552671", "erin").await;
    assert_eq!(status, 200, "{invite}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.starts_with("+14155552671\n") && written.contains(invite["invite_code"].as_str().unwrap()),
        "{written}"
    );
    let env = std::fs::read_to_string(&env_out).unwrap();
    assert!(!env.contains(secret) && !env.contains("sk-not-for") && !env.contains("ADMIN_TOKEN"), "{env}");
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    assert!(names.iter().all(|n| ["PATH", "LANG", "TOPDOG_SMS_TO", "PWD", "SHLVL", "_"].contains(n)), "{names:?}");

    std::fs::write(&script, "#!/bin/sh\necho 'modem offline' >&2\nexit 3\n").unwrap();
    let (status, failed) = app.send_sms("+14155552671", "erin").await;
    assert_eq!(status, 502);
    assert!(failed["detail"].as_str().unwrap().contains("modem offline"), "{failed}");
}

#[tokio::test]
async fn console_by_default_masks_the_number_and_hides_the_link_off_a_terminal() {
    let app = spawn_with(Options::default().default_sms().process()).await;
    let (status, invite) = app.send_sms("+14155552671", "gina").await;
    assert_eq!(status, 200, "{invite}");
    let code = invite["invite_code"].as_str().unwrap();
    let output = app.output().join("\n");
    let block = &output[output.find("MOCK SMS").expect("the console block")..];
    assert!(block.contains("To:      +1******2671"), "{block}");
    assert!(!block.contains(code) && !block.contains("4155552671"), "{block}");
    assert!(!app.log().contains(code), "the code must not reach the log either");
}

#[tokio::test]
async fn country_allow_list_refuses_other_countries() {
    let app = spawn_with(Options::default().env("TOPDOG_SMS_ALLOWED_COUNTRIES", "FR,DE")).await;
    let (status, refused) = app.send_sms("+14155552671", "frank").await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("country_not_allowed")));
    assert_eq!(app.send_sms("+33612345678", "frank").await.0, 200);
}

#[tokio::test]
async fn texts_come_from_the_operators_templates_and_bad_ones_stop_the_start() {
    let mut hook = fakes::webhook().await;
    let options = Options::default()
        .env("TOPDOG_SMS_INVITE_TEMPLATE", "Hi {user_name}, pair: {pairing_link} ({expiry_minutes} min)")
        .arg("--sms-resend-template")
        .arg("Again, {user_name}: {pairing_link}");
    let app = spawn_with(through_webhook(options, &hook)).await;
    let (status, invite) = app.send_sms("+14155552671", "dan").await;
    assert_eq!(status, 200, "{invite}");
    let code = invite["invite_code"].as_str().unwrap();
    let (status, _) = app.admin_post(&format!("/phone/pairing/resend-sms/{code}"), serde_json::json!({})).await;
    assert_eq!(status, 200);
    let sent = hook.wait_for(2).await;
    assert!(
        sent[0].body.starts_with("Hi Test User, pair: https://") && sent[0].body.ends_with("(15 min)"),
        "{}",
        sent[0].body
    );
    assert!(sent[1].body.starts_with("Again, Test User: https://"), "{}", sent[1].body);
    assert_eq!(code_in(&sent[0].body), code);

    for (template, why) in [("Pair now!", "pairing_link"), ("{pairing_link} {secret}", "unknown placeholder")] {
        let scratch = tempfile::tempdir().unwrap();
        let refused = std::process::Command::new(crate::helpers::binary())
            .args(["serve", "--data-dir"])
            .arg(scratch.path().join("data"))
            .args(["--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--sms-invite-template", template])
            .output()
            .unwrap();
        assert!(!refused.status.success(), "{template} must stop the start");
        assert!(String::from_utf8_lossy(&refused.stderr).contains(why), "{}", String::from_utf8_lossy(&refused.stderr));
    }
}
