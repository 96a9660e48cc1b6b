//! Escalation by SMS (through the webhook provider's stand-in): an unseen
//! approval is texted exactly once after the delay, a seen one never; an
//! unseen priority-5 notification again every repeat until it is seen, at
//! most three times. The clock is moved, not waited for. Each check that
//! nothing more was sent waits for a later item's text first, so the
//! escalation loop has passed the earlier items by then.

use crate::fakes::{self, Fake, Message};
use crate::helpers::{eventually, send, spawn_with, Options, TestApp};
use serde_json::json;

const NUMBER: &str = "+14155552671";

/// An appliance texting through a stand-in, escalating after 30 s and
/// every 60 s, with vic's phone paired (its invite texted); and its token.
async fn texting_vic() -> (Fake, TestApp, String) {
    let mut hook = fakes::webhook().await;
    let options = Options::default().arg("--escalate-after").arg("30s").arg("--escalate-repeat").arg("60s");
    let mut app = spawn_with(crate::sms::through_webhook(options, &hook)).await;
    let token = app.pair("vic", "vic-phone").await;
    hook.wait_for(1).await;
    (hook, app, token)
}

/// The escalation texts among `messages` (not the pairing invites).
fn escalations(messages: &[Message]) -> Vec<&Message> {
    messages.iter().filter(|m| m.body.contains("waiting for you")).collect()
}

async fn approval(app: &TestApp, title: &str) -> (String, String) {
    let (status, asked) =
        app.admin_post("/phone/approvals", json!({"user_id": "vic", "title": title, "timeout_s": 3600})).await;
    assert_eq!(status, 201, "{asked}");
    (asked["id"].as_str().unwrap().to_owned(), asked["code"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_unseen_approval_is_texted_once_and_a_seen_one_never() {
    let (mut hook, app, token) = texting_vic().await;
    let (unseen, code) = approval(&app, "Deploy 1.4 to production").await;
    let (seen, _) = approval(&app, "Rotate the keys").await;
    let (status, _) =
        send(app.client.post(app.url("/phone/seen")).bearer_auth(&token).json(&json!({"ids": [seen]}))).await;
    assert_eq!(status, 200);
    app.shift_clock(31).await;
    let texts = hook.wait_for(2).await;
    let text = &escalations(&texts)[0];
    assert_eq!(text.to, NUMBER);
    assert!(text.body.contains("Approval") && text.body.contains("Deploy 1.4 to production"), "{}", text.body);
    assert!(text.body.contains(&format!("/app#approval-{unseen}")), "a link to the item: {}", text.body);
    // As a number of its own: the code's digits may well turn up inside
    // the link's port.
    let numbers: Vec<&str> = text.body.split(|c: char| !c.is_ascii_digit()).collect();
    assert!(!numbers.contains(&code.as_str()), "never the number to match ({code}): {}", text.body);

    app.shift_clock(600).await;
    let (marker, _) = approval(&app, "Marker").await;
    app.shift_clock(31).await;
    let texts = hook.wait_for(3).await;
    let sent: Vec<&str> = escalations(&texts).iter().map(|m| m.body.as_str()).collect();
    assert_eq!(sent.len(), 2, "one for the unseen approval, one for the marker: {sent:?}");
    assert!(sent[1].contains(&marker), "{sent:?}");
    assert!(!sent.iter().any(|t| t.contains(&seen)), "the seen approval was never texted: {sent:?}");
    // Each text is audited once the provider answered.
    eventually(|| async {
        let audit = app.audit();
        let texts = audit.iter().filter(|e| e["action"] == "escalation.sms" && e["result"] == "ok").count();
        if texts == 2 {
            Ok(())
        } else {
            Err(format!("each text audited: {audit:?}"))
        }
    })
    .await;
}

#[tokio::test]
async fn an_unseen_urgent_notification_repeats_until_seen_at_most_three_times() {
    let (mut hook, app, token) = texting_vic().await;
    let notify = |title: &str, priority: u8| {
        let body = json!({"user_id": "vic", "title": title, "body": "secret details", "priority": priority});
        app.admin_post("/phone/notify", body)
    };
    let (status, urgent) = notify("Production is down", 5).await;
    assert_eq!(status, 200, "{urgent}");
    let (status, _) = notify("Nightly report", 4).await;
    assert_eq!(status, 200, "below priority 5 nothing escalates");
    let (_, acked) = notify("Disk almost full", 5).await;
    let acked = acked["id"].as_str().unwrap().to_owned();

    app.shift_clock(31).await;
    let texts = hook.wait_for(3).await;
    assert!(escalations(&texts).iter().all(|m| !m.body.contains("secret details")), "never the body");
    let (status, _) =
        send(app.client.post(app.url("/phone/seen")).bearer_auth(&token).json(&json!({"ids": [acked]}))).await;
    assert_eq!(status, 200);
    for n in [4, 5] {
        app.shift_clock(61).await;
        hook.wait_for(n).await;
    }
    app.shift_clock(61).await;
    app.shift_clock(61).await;
    let (_, marker) = notify("Marker", 5).await;
    app.shift_clock(31).await;
    let texts = hook.wait_for(6).await;
    let sent: Vec<&str> = escalations(&texts).iter().map(|m| m.body.as_str()).collect();
    let count = |title: &str| sent.iter().filter(|t| t.contains(title)).count();
    assert_eq!(count("Production is down"), 3, "repeats, capped at three: {sent:?}");
    assert_eq!(count("Disk almost full"), 1, "stops once seen: {sent:?}");
    assert_eq!(count("Nightly report"), 0);
    assert!(sent.last().unwrap().contains(marker["id"].as_str().unwrap()), "{sent:?}");
}

#[tokio::test]
async fn an_admin_records_the_number_escalations_text() {
    let (mut hook, app, _) = texting_vic().await;
    let (status, refused) = app.admin_post("/phone/devices/vic-phone/sms-number", json!({"phone_number": "12"})).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_phone_number")), "{refused}");
    let (status, set) =
        app.admin_post("/phone/devices/vic-phone/sms-number", json!({"phone_number": "+442071838750"})).await;
    assert_eq!((status, set["sms_number"].as_str()), (200, Some("+4*******8750")), "{set}");
    let (_, listed) = app.admin_get("/phone/devices").await;
    assert_eq!(listed["devices"][0]["sms_number"], "+4*******8750", "masked in the list: {listed}");
    assert!(!listed.to_string().contains("2071838750"), "never whole: {listed}");
    let (id, _) = approval(&app, "Deploy").await;
    app.shift_clock(31).await;
    let texts = hook.wait_for(2).await;
    assert_eq!((texts[1].to.as_str(), texts[1].body.contains(&id)), ("+442071838750", true));
}
