//! SMS pairing end to end in console mode, the pairing page, invite
//! lifecycle (status, resend, cancel) and the one-time guarantee.

use crate::helpers::{accept_body, code_in, spawn_app, spawn_process};
use serde_json::json;

#[tokio::test]
async fn sms_pairing_end_to_end_in_console_mode() {
    let mut app = spawn_process().await;
    let (status, invite) = app.send_sms("+1 415 555 2671", "alice").await;
    assert_eq!(status, 200, "{invite}");
    assert_eq!(invite["phone_number"], "+1******2671");
    assert_eq!(invite["status"], "pending");
    let code = invite["invite_code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 43);

    let sms = app.console_sms(1).await;
    assert!(app.output().iter().any(|l| l == "To:      +1******2671"), "console block masks the number");
    let to_lines: Vec<String> = app.output().into_iter().filter(|l| l.starts_with("To:")).collect();
    assert!(to_lines.iter().all(|l| !l.contains("4155552671")), "the whole number is never printed: {to_lines:?}");
    assert!(sms.contains(&format!("/pair?code={code}")) && sms.contains("Test User"), "{sms}");

    let (status, accepted) = app.accept(&code_in(&sms), "pixel-8").await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["device_id"], "pixel-8");
    assert_eq!(accepted["user_id"], "alice");
    assert!(accepted["mqtt_broker"].as_str().unwrap().ends_with(&format!(":{}", app.mqtt_port)));
    let token = accepted["jwt_token"].as_str().unwrap();

    let (status, me) = app.device_get("/phone/me", token).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!((me["user_id"].as_str(), me["status"].as_str()), (Some("alice"), Some("active")));

    let (_, view) = app.get(&format!("/phone/pairing/invite/{code}")).await;
    assert_eq!((view["status"].as_str(), view["is_valid"].as_bool()), (Some("accepted"), Some(false)));
    let (status, again) = app.accept(&code, "other-phone").await;
    assert_eq!((status, again["error"].as_str()), (409, Some("invite_already_used")));
    assert!(!app.log().contains("4155552671"), "the whole number must not reach the log");
}

#[tokio::test]
async fn opening_the_pairing_page_consumes_nothing() {
    let app = spawn_app().await;
    let (_, invite) = app.send_sms("+14155552671", "bob").await;
    let code = invite["invite_code"].as_str().unwrap();
    for _ in 0..3 {
        let page = app.client.get(app.url(&format!("/pair?code={code}"))).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        let html = page.text().await.unwrap();
        assert!(html.contains("Top Dog wants to pair with your phone") && html.contains("Test User"), "{html}");
        assert!(html.contains(r#"<button id="accept" type="submit">Accept</button>"#));
    }
    let (_, view) = app.get(&format!("/phone/pairing/invite/{code}")).await;
    assert_eq!(view["status"], "pending");
    assert_eq!(app.accept(code, "p1").await.0, 200);
    let used = app.client.get(app.url(&format!("/pair?code={code}"))).send().await.unwrap().text().await.unwrap();
    assert!(used.contains("already been used") && used.contains("id=\"accept-form\" hidden"), "{used}");
    let unknown = app.client.get(app.url("/pair?code=nonsense")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    let script = app.client.get(app.url("/assets/pair.js")).send().await.unwrap();
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
}

#[tokio::test]
async fn resend_renews_and_cancel_withdraws() {
    let mut app = spawn_app().await;
    let (_, invite) = app.send_sms("+14155552671", "carol").await;
    let code = invite["invite_code"].as_str().unwrap().to_owned();
    let (status, resent) = app.admin_post(&format!("/phone/pairing/resend-sms/{code}"), json!({})).await;
    assert_eq!(status, 200, "{resent}");
    assert!(resent["expires_at"].as_str() > invite["expires_at"].as_str());
    assert_eq!(code_in(&app.console_sms(2).await), code);

    let (status, cancelled) =
        crate::helpers::send(app.admin(reqwest::Method::DELETE, &format!("/phone/pairing/invite/{code}"))).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")));
    let (status, refused) = app.accept(&code, "p1").await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("invite_cancelled")));
    let (status, _) = app.admin_post(&format!("/phone/pairing/resend-sms/{code}"), json!({})).await;
    assert_eq!(status, 409);
    let events: Vec<String> = app
        .audit()
        .iter()
        .map(|e| format!("{} {}", e["action"].as_str().unwrap(), e["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            "invite.create ok",
            "invite.resend ok",
            "invite.cancel ok",
            "invite.reject invite_cancelled",
            "invite.resend invite_cancelled"
        ]
    );
}

#[tokio::test]
async fn fifty_concurrent_accepts_of_one_code_have_exactly_one_winner() {
    let app = spawn_app().await;
    let (_, invite) = app.send_sms("+14155552671", "dave").await;
    let code = invite["invite_code"].as_str().unwrap().to_owned();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (client, url, body) = (
            app.client.clone(),
            app.url("/phone/pairing/accept-invite"),
            accept_body(&code, &format!("racer-{i}"), None),
        );
        tasks.spawn(async move { client.post(url).json(&body).send().await.unwrap().status().as_u16() });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "{statuses:?}");
    let (_, list) = app.admin_get("/phone/devices").await;
    assert_eq!(list["count"], 1);
}
