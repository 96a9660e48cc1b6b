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

/// `options` for node `name` on database `url` (a process: some are killed).
fn node(options: &Options, url: &str, name: &str) -> Options {
    options.clone().process().arg("--database-url").arg(url).arg("--node-name").arg(name)
}

/// `n` nodes on database `url`: the first makes the keys, the others get
/// them by `topdog keys export|import`.
async fn nodes_on(url: &str, n: usize) -> Vec<TestApp> {
    nodes_with(&Options::default(), url, n).await
}

/// `n` nodes started with `options` on database `url`.
async fn nodes_with(options: &Options, url: &str, n: usize) -> Vec<TestApp> {
    nodes_each(url, n, |_| options.clone()).await
}

/// `n` nodes on database `url`, node `i` (from 1) started with `options(i)`.
async fn nodes_each(url: &str, n: usize, options: impl Fn(usize) -> Options) -> Vec<TestApp> {
    let first = spawn_with(node(&options(1), url, "node-1")).await;
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
        nodes.push(start_in(dir, node(&options(i), url, &format!("node-{i}")), &token).await);
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
    let decisions = nodes[1]
        .audit()
        .iter()
        .filter(|e| e["action"] == "approval.approved" || e["action"] == "approval.rejected")
        .count();
    assert_eq!(decisions, 1, "one decision is recorded in the audit log the nodes share");
    let verified = nodes[2].audit_verify();
    assert!(verified.status.success(), "one chain for all the nodes: {}", String::from_utf8_lossy(&verified.stderr));

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

/// The name of the node leading the background work, as `app` lists the
/// nodes, once `n` are alive and one of them leads.
async fn leader(app: &TestApp, n: usize) -> String {
    eventually(|| async {
        let (_, status) = app.admin_get("/admin/status").await;
        let listed = status["nodes"].as_array().cloned().unwrap_or_default();
        let alive: Vec<&Value> = listed.iter().filter(|n| n["alive"] == true).collect();
        let leading: Vec<&str> =
            alive.iter().filter(|n| n["leading"] == true).filter_map(|n| n["name"].as_str()).collect();
        match leading[..] {
            [name] if alive.len() == n => Ok(name.to_owned()),
            _ => Err(format!("{status}")),
        }
    })
    .await
}

/// The escalation texts the stand-in received, by approval id.
fn texted(hook: &crate::fakes::Fake, ids: &[&str]) -> Vec<usize> {
    let texts = hook.messages();
    ids.iter().map(|id| texts.iter().filter(|m| m.body.contains(&format!("approval-{id}"))).count()).collect()
}

#[cfg_attr(not(feature = "system-tests"), ignore = "needs PostgreSQL: the test command (tests/run.sh) starts it")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_runs_on_the_leading_node_and_moves_when_it_dies() {
    let url = postgres::fresh_database().await;
    let mut hook = crate::fakes::webhook().await;
    let options = crate::sms::through_webhook(Options::default().arg("--escalate-after").arg("30s"), &hook);
    let mut nodes = nodes_with(&options, &url, 2).await;
    nodes[0].pair("vic", "vic-phone").await;
    hook.wait_for(1).await;
    let lead = if leader(&nodes[0], 2).await == "node-1" { 0 } else { 1 };
    let other = 1 - lead;
    let id = |approval: &Value| approval["id"].as_str().unwrap().to_owned();

    // Asked on the node that does not lead: the leader texts it, once.
    let first = id(&ask(&nodes[other], "vic", 3600, None).await);
    for node in &nodes {
        node.shift_clock(31).await;
    }
    hook.wait_for(2).await;
    assert_eq!(texted(&hook, &[&first]), [1]);

    // Asked on the leader, which dies before it is due: the other node
    // takes the lead, picks it up from the store and texts it; the first
    // one, texted already, is not texted again.
    let second = id(&ask(&nodes[lead], "vic", 3600, None).await);
    nodes[lead].kill9();
    assert_eq!(leader(&nodes[other], 1).await, format!("node-{}", other + 1));
    nodes[other].shift_clock(31).await;
    hook.wait_for(3).await;
    // Past the repeat interval too: a repeat of a text already sent would
    // go out before the marker's.
    nodes[other].shift_clock(600).await;
    let marker = id(&ask(&nodes[other], "vic", 3600, None).await);
    nodes[other].shift_clock(31).await;
    hook.wait_for(4).await;
    assert_eq!(texted(&hook, &[&first, &second, &marker]), [1, 1, 1], "{:?}", hook.messages());
}

#[cfg_attr(
    not(feature = "system-tests"),
    ignore = "needs PostgreSQL and pebble: the test command (tests/run.sh) starts them"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leading_node_orders_the_certificate_every_node_serves_and_the_next_leader_renews() {
    use crate::acme::{issued, leaf_now, renewed, trust_only_pebble, DOMAIN};
    let url = postgres::fresh_database().await;
    let plain: Vec<u16> = (0..2).map(|_| crate::pebble::free_port()).collect();
    // pebble validates HTTP-01 on node 2's port: node 1 leads and orders,
    // node 2 answers for it.
    let pebble = crate::pebble::Pebble::start(plain[1], crate::pebble::free_port()).await;
    let mut nodes = nodes_each(&url, 2, |i| {
        let flags = pebble.flags(&[DOMAIN]);
        let options = flags.iter().fold(Options::default().unlicensed(), |o, flag| o.arg(flag));
        options
            .arg("--acme-challenge")
            .arg("http-01")
            .arg("--acme-http-addr")
            .arg(&format!("127.0.0.1:{}", plain[i - 1]))
    })
    .await;
    // Until node 1 serves pebble's certificate, a client of its own CA
    // reaches it. Its first order may have failed before node 2 listened:
    // the retry, a minute later, is brought forward.
    let (own, own_base) = (nodes[0].client.clone(), nodes[0].base.clone());
    let token = nodes[0].admin_token.clone();
    let as_admin = |request: reqwest::RequestBuilder| request.header("x-admin-token", &token);
    for node in nodes.iter_mut() {
        trust_only_pebble(node, &pebble);
    }
    eventually(|| async {
        if let Ok(answer) = nodes[0].admin(reqwest::Method::GET, "/admin/status").send().await {
            let status: Value = answer.json().await.map_err(|e| e.to_string())?;
            return if status["acme"]["state"] == "valid" { Ok(()) } else { Err(status.to_string()) };
        }
        let answer = as_admin(own.get(format!("{own_base}/admin/status"))).send().await;
        let status: Value = answer.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        if status["acme"]["failures"].as_u64() > Some(0) {
            let shift = as_admin(own.post(format!("{own_base}/admin/test/clock"))).json(&json!({"shift_s": 61}));
            shift.send().await.map_err(|e| e.to_string())?;
        }
        Err(format!("{status}\n{}", pebble.log()))
    })
    .await;
    let status = issued(&nodes[1], &pebble).await;
    assert_eq!(leader(&nodes[1], 2).await, "node-1");
    let first = leaf_now(&nodes[0], &pebble).await;
    assert_eq!(leaf_now(&nodes[1], &pebble).await, first, "every node serves the certificate the leader ordered");
    let issued_ok = |app: &TestApp| {
        app.audit().iter().filter(|e| e["action"] == "certificate.issue" && e["result"] == "ok").count()
    };
    assert_eq!(issued_ok(&nodes[1]), 1, "one order, by the leader");

    // The leader dies; node 2 leads and renews at two thirds of the
    // certificate's life, answering its own challenge.
    nodes[0].kill9();
    assert_eq!(leader(&nodes[1], 1).await, "node-2");
    let days_left = status["certificate"]["days_left"].as_i64().unwrap();
    nodes[1].shift_clock(days_left * 86_400 * 3 / 4).await;
    renewed(&nodes[1], &pebble, &first).await;
    assert_eq!(issued_ok(&nodes[1]), 2);
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
    let history = app.audit();
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
    assert_eq!(app.audit()[..history.len()], history[..], "the audit log came along");
    let verified = app.audit_verify();
    assert!(verified.status.success(), "its chain continues: {}", String::from_utf8_lossy(&verified.stderr));
    let next = notify(&app, "di", "three").await;
    assert!(sent.iter().all(|id| *id < next), "new ids come after the copied ones: {sent:?} < {next}");
}
