//! Several nodes acting as one appliance on one PostgreSQL database (with
//! one appliance's keys, given by `topdog keys export|import`): a message
//! posted to one node reaches a phone connected to another, a revoke on any
//! node cuts the phone off wherever it is, an approval answered on two
//! nodes at once is decided once, a console session works on every node, a node killed mid-way loses nothing, the
//! nodes ride out a PostgreSQL restart, and `topdog store copy` moves a
//! sled appliance into PostgreSQL with the same answers.

use crate::cli::topdog;
use crate::helpers::*;
use crate::messaging::ask;
use crate::phone::Phone;
use crate::postgres;
use serde_json::{json, Value};
use std::sync::Arc;

/// Options for node `name` on database `url`.
fn node(url: &str, name: &str) -> Options {
    Options::default().arg("--database-url").arg(url).arg("--node-name").arg(name)
}

/// `n` nodes on database `url`: the first makes the keys, the others get
/// them by `topdog keys export|import`.
async fn nodes_on(url: &str, n: usize) -> Vec<TestApp> {
    let first = spawn_with(node(url, "node-1")).await;
    let keys = first.dir.path().join("keys.json");
    let export = topdog(&["keys", "export", keys.to_str().unwrap(), "--data-dir", first.data_dir().to_str().unwrap()]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let mut nodes = vec![first];
    for i in 2..=n {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let import = topdog(&["keys", "import", keys.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
        assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
        let token = nodes[0].admin_token.clone();
        nodes.push(start_in(dir, node(url, &format!("node-{i}")), &token).await);
    }
    nodes
}

/// `device` of `user`, paired on node 1 and connected there, online.
async fn phone_on_first(nodes: &mut [TestApp], user: &str, device: &str) -> (Value, Phone) {
    let paired = nodes[0].pair_full(user, device).await;
    let mut phone = Phone::connect(&nodes[0], &paired).await;
    phone.online(None).await;
    (paired, phone)
}

async fn notify(app: &TestApp, user: &str, title: &str) -> String {
    let body = json!({"user_id": user, "title": title, "body": "from another node", "priority": 3});
    let (status, sent) = app.admin_post("/phone/notify", body).await;
    assert_eq!(status, 200, "{sent}");
    sent["id"].as_str().unwrap().to_owned()
}

#[cfg_attr(not(feature = "system-tests"), ignore = "needs PostgreSQL: the test command (tests/run.sh) starts it")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_act_as_one_appliance() {
    let url = postgres::fresh_database().await;
    let mut nodes = nodes_on(&url, 3).await;
    let (paired, mut phone) = phone_on_first(&mut nodes, "ada", "phone-a").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();

    // Every node knows the others, and the phone is on node 1.
    let status = eventually(|| async {
        let (_, status) = nodes[1].admin_get("/admin/status").await;
        let listed = status["nodes"].as_array().cloned().unwrap_or_default();
        let alive = listed.iter().filter(|n| n["alive"] == true).count();
        let on_first = listed.iter().any(|n| n["name"] == "node-1" && n["phones"] == 1);
        let leaders = listed.iter().filter(|n| n["leading"] == true).count();
        if alive == 3 && on_first && leaders == 1 {
            Ok(status)
        } else {
            Err(format!("{status}"))
        }
    })
    .await;
    assert_eq!((status["node"].as_str(), status["store"].as_str()), (Some("node-2"), Some("postgres")));

    // A notification posted to node 3 reaches the phone on node 1.
    let id = notify(&nodes[2], "ada", "Build #1 passed").await;
    let got = phone.next("notification").await;
    assert_eq!((got["id"].as_str(), got["title"].as_str()), (Some(id.as_str()), Some("Build #1 passed")));

    // An approval answered on nodes 2 and 3 at once is decided once, and
    // the requester waiting on node 1 hears of it.
    let approval = ask(&nodes[0], "ada", 300, None).await;
    let (aid, code) = (approval["id"].as_str().unwrap().to_owned(), approval["code"].as_str().unwrap().to_owned());
    assert_eq!(phone.next("approval_request").await["id"].as_str(), Some(aid.as_str()));
    let wait_path = format!("/phone/approvals/{aid}?wait=20s");
    let waiting = nodes[0].admin_get(&wait_path);
    let answer = |app: &TestApp, decision: &str| {
        let path = format!("/phone/approvals/{aid}/respond");
        send(app.client.post(app.url(&path)).bearer_auth(&token).json(&json!({"decision": decision, "code": code})))
    };
    let (waited, (s2, a2), (s3, a3)) = tokio::join!(waiting, answer(&nodes[1], "approve"), answer(&nodes[2], "reject"));
    let mut statuses = [s2, s3];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "exactly one answer wins: {a2} {a3}");
    let winner = if s2 == 200 { "approved" } else { "rejected" };
    assert_eq!(
        (waited.0, waited.1["status"].as_str()),
        (200, Some(winner)),
        "the waiter on node 1 hears it: {}",
        waited.1
    );
    let decisions: usize = nodes
        .iter()
        .map(|n| {
            n.audit()
                .iter()
                .filter(|e| e["action"] == "approval.approved" || e["action"] == "approval.rejected")
                .count()
        })
        .sum();
    assert_eq!(decisions, 1, "one decision is recorded, on one node");

    // A console session begun on node 1 works on node 3; signed out on
    // node 3, it is over on node 1 too.
    let (cookie, csrf) = crate::console::sign_in(&nodes[0]).await;
    let session = |app: &TestApp| send(app.client.get(app.url("/phone/devices")).header("cookie", &cookie));
    assert_eq!(session(&nodes[2]).await.0, 200, "the session is known on every node");
    let out =
        nodes[2].client.delete(nodes[2].url("/admin/session")).header("cookie", &cookie).header("x-csrf-token", &csrf);
    assert_eq!(send(out).await.0, 200);
    assert_eq!(session(&nodes[0]).await.0, 401, "signed out everywhere");

    // A revoke on node 2 cuts the phone off on node 1 within a second, and
    // no node lets it back in.
    let (status, _) = send(nodes[1].admin(reqwest::Method::DELETE, "/phone/devices/phone-a")).await;
    assert_eq!(status, 200);
    let control = phone.next("control").await;
    assert_eq!(control["action"], "revoked");
    let took = phone.dropped().await;
    assert!(took < std::time::Duration::from_secs(1), "cut off after {took:?}");
    for other in &nodes {
        let (client, mut events) = crate::phone::phone(other, &paired, "phone-a");
        assert!(crate::phone::connected(&mut events).await.is_err(), "a revoked phone is refused on every node");
        let _ = client.disconnect().await;
    }
    let _ = &mut nodes;
}

#[cfg_attr(not(feature = "system-tests"), ignore = "needs PostgreSQL: the test command (tests/run.sh) starts it")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_whose_node_is_killed_moves_to_another_and_misses_nothing() {
    let url = postgres::fresh_database().await;
    let mut nodes = nodes_on(&url, 2).await;
    let (paired, mut phone) = phone_on_first(&mut nodes, "bo", "phone-b").await;
    let first = notify(&nodes[1], "bo", "before").await;
    assert_eq!(phone.next("notification").await["id"].as_str(), Some(first.as_str()));

    nodes[0].kill9();
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(notify(&nodes[1], "bo", &format!("while away {i}")).await);
    }
    let mut moved = Phone::connect(&nodes[1], &paired).await;
    moved.online(Some(&first)).await;
    let replayed: Vec<String> =
        moved.next_n("notification", 5).await.iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(replayed, missed, "everything stored while its node was down, in order");

    // The surviving node takes over the background work.
    eventually(|| async {
        let (_, status) = nodes[1].admin_get("/admin/status").await;
        let listed = status["nodes"].as_array().cloned().unwrap_or_default();
        let leads = listed.iter().any(|n| n["name"] == "node-2" && n["leading"] == true);
        if leads {
            Ok(())
        } else {
            Err(format!("{status}"))
        }
    })
    .await;
}

#[cfg_attr(not(feature = "system-tests"), ignore = "needs PostgreSQL: the test command (tests/run.sh) starts it")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_ride_out_a_postgres_restart_without_losing_an_acknowledged_write() {
    let server = postgres::Private::start();
    let url = postgres::fresh_database_on(&server.url).await;
    let mut nodes = nodes_on(&url, 2).await;
    let (_, _phone) = phone_on_first(&mut nodes, "cy", "phone-c").await;

    // Notifications keep being posted to both nodes while PostgreSQL
    // restarts (once ten were acknowledged), until each node has had ten
    // more acknowledged after it: each one acknowledged (200) must be kept.
    let wrote = Arc::new(tokio::sync::watch::Sender::new(0usize));
    let restarted = Arc::new(tokio::sync::watch::Sender::new(false));
    let load = |app: &TestApp, tag: &'static str| {
        let (client, url) = (app.client.clone(), app.url("/phone/notify"));
        let token = app.admin_token.clone();
        let (wrote, restarted) = (wrote.clone(), restarted.subscribe());
        async move {
            let (mut kept, mut after) = (Vec::new(), 0);
            for i in 0..5_000 {
                let body = json!({"user_id": "cy", "title": format!("{tag} {i}"), "body": "load", "priority": 2});
                let answer = client.post(&url).header("x-admin-token", &token).json(&body).send().await;
                let Ok(answer) = answer.map_err(|_| ()).and_then(|a| a.error_for_status().map_err(|_| ())) else {
                    continue;
                };
                let sent: Value = answer.json().await.unwrap();
                kept.push(sent["id"].as_str().unwrap().to_owned());
                wrote.send_modify(|n| *n += 1);
                after += usize::from(*restarted.borrow());
                if after == 10 {
                    break;
                }
            }
            (kept, after)
        }
    };
    let restart = async {
        let _ = wrote.subscribe().wait_for(|n| *n >= 10).await;
        tokio::task::block_in_place(|| server.restart());
        restarted.send_replace(true);
    };
    let ((a, a_after), (b, b_after), ()) = tokio::join!(load(&nodes[0], "one"), load(&nodes[1], "two"), restart);
    assert_eq!((a_after, b_after), (10, 10), "both nodes kept working after the restart");

    // Both nodes answer again, and every acknowledged notification is there.
    let after = notify(&nodes[1], "cy", "after the restart").await;
    let stored = postgres::query(&url, "SELECT key FROM notifications").await;
    for id in a.iter().chain(&b).chain([&after]) {
        assert!(stored.contains(id), "acknowledged notification {id} was lost");
    }
    let (status, listed) = nodes[0].admin_get("/admin/status").await;
    assert_eq!(status, 200, "{listed}");
    let _ = &mut nodes;
}

/// What the appliance answers about its devices, license and the phone's
/// notifications.
async fn answers(app: &TestApp, token: &str) -> (Value, Value, Value) {
    let (_, devices) = app.admin_get("/phone/devices").await;
    let (_, license) = app.admin_get("/admin/license").await;
    let (_, listed) = app.device_get("/phone/notifications", token).await;
    let license = json!([license["seats"], license["seats_used"], license["customer"]]);
    (devices["devices"].clone(), license, listed["notifications"].clone())
}

#[cfg_attr(not(feature = "system-tests"), ignore = "needs PostgreSQL: the test command (tests/run.sh) starts it")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_moves_a_sled_appliance_into_postgres_with_the_same_answers() {
    let mut app = spawn_with(Options::default()).await;
    let paired = app.pair_full("di", "phone-d").await;
    let token = paired["jwt_token"].as_str().unwrap().to_owned();
    let sent = [notify(&app, "di", "one").await, notify(&app, "di", "two").await];
    let before = answers(&app, &token).await;
    assert_eq!(before.2.as_array().map(Vec::len), Some(2), "{:?}", before.2);
    let status = app.stop();
    assert!(status.success());

    let url = postgres::fresh_database().await;
    let data = app.data_dir();
    let copy = |url: &str| {
        topdog(&[
            "store",
            "copy",
            "--from",
            "sled",
            "--to",
            "postgres",
            "--data-dir",
            data.to_str().unwrap(),
            "--database-url",
            url,
        ])
    };
    let copied = copy(&url);
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    assert!(String::from_utf8_lossy(&copied.stdout).contains("Copied"), "{}", String::from_utf8_lossy(&copied.stdout));
    let again = copy(&url);
    assert!(!again.status.success(), "a second copy into a database with records is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds records"));

    let app = app.start_again(|o| o.arg("--database-url").arg(&url)).await;
    let (_, status) = app.admin_get("/admin/status").await;
    assert_eq!(status["store"], "postgres");
    assert_eq!(answers(&app, &token).await, before, "the same answers from PostgreSQL");
    let next = notify(&app, "di", "three").await;
    assert!(sent.iter().all(|id| *id < next), "new ids come after the copied ones: {sent:?} < {next}");
}
