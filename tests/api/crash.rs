//! Durability: a `kill -9` in the middle of a burst of invites loses none of
//! the invites that were acknowledged with a 2xx.

use crate::helpers::spawn_app;
use serde_json::json;
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn acknowledged_invites_survive_kill_9() {
    let mut app = spawn_app().await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let (enough_tx, mut enough_rx) = tokio::sync::watch::channel(0usize);
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..4 {
        let (client, url, token, acked, enough_tx) = (
            app.client.clone(),
            app.url("/phone/pairing/send-sms"),
            app.admin_token.clone(),
            acked.clone(),
            enough_tx.clone(),
        );
        writers.spawn(async move {
            for i in 0..500 {
                let body =
                    json!({"phone_number": "+14155552671", "user_id": format!("u{w}-{i}"), "user_name": "Burst"});
                let Ok(response) = client.post(&url).header("x-admin-token", &token).json(&body).send().await else {
                    return;
                };
                if !response.status().is_success() {
                    return;
                }
                let Ok(answer) = response.json::<serde_json::Value>().await else { return };
                let mut list = acked.lock().unwrap();
                list.push(answer["invite_code"].as_str().unwrap().to_owned());
                enough_tx.send_replace(list.len());
            }
        });
    }
    enough_rx.wait_for(|n| *n >= 60).await.unwrap();
    app.kill9();
    while writers.join_next().await.is_some() {}
    let codes = acked.lock().unwrap().clone();
    assert!(codes.len() >= 60);

    let app = app.start_again(|o| o).await;
    for code in &codes {
        let (status, view) = app.get(&format!("/phone/pairing/invite/{code}")).await;
        assert_eq!((status, view["status"].as_str()), (200, Some("pending")), "acknowledged invite {code} was lost");
    }
}
