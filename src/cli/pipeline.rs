//! `topdog notify` and `topdog approve`: what a build pipeline runs. Both
//! need only the binary and `TOPDOG_URL`, `TOPDOG_TOKEN` (a scoped API
//! token) and `TOPDOG_CA_CERT`. `approve` prints the number to match, waits
//! for the phone (long polls, riding out network errors and appliance
//! restarts) and exits 0 approved, 1 rejected, 2 expired, 3 error, so that
//! `topdog approve … && ./deploy.sh` gates a deploy. With `--json`, stdout
//! has the approval as asked, then as decided, one JSON object a line.

use super::client::{Answer, Transport};
use super::Remote;
use anyhow::Context as _;
use serde_json::{json, Value};
use std::io::Read as _;
use std::process::ExitCode;
use std::time::Duration;

/// `topdog notify`'s options.
#[derive(Debug, clap::Args)]
pub(super) struct NotifyArgs {
    /// Every active phone of this user…
    #[arg(long, required_unless_present = "device")]
    user: Option<String>,
    /// …or this one phone.
    #[arg(long, conflicts_with = "user")]
    device: Option<String>,
    /// Headline (1–200 characters).
    #[arg(long)]
    title: String,
    /// Text (up to 4,000 characters); `-` reads it from stdin.
    #[arg(long)]
    body: Option<String>,
    /// 1 (lowest) to 5 (urgent: pushed at once, texted if unseen).
    #[arg(long)]
    priority: Option<u8>,
    /// build_started, build_success, build_failure, test_results, …
    #[arg(long)]
    kind: Option<String>,
    /// An http(s) link the phone opens (the build's page).
    #[arg(long)]
    link: Option<String>,
}

/// `topdog approve`'s options.
#[derive(Debug, clap::Args)]
pub(super) struct ApproveArgs {
    /// Whose phones are asked.
    #[arg(long)]
    user: String,
    /// What is to be approved (1–200 characters).
    #[arg(long)]
    title: String,
    /// More detail (up to 4,000 characters); `-` reads it from stdin.
    #[arg(long)]
    detail: Option<String>,
    /// How long the phone has to answer (10s to 24h).
    #[arg(long, default_value = "5m")]
    timeout: humantime::Duration,
}

/// Exit status of `approve`: approved.
const APPROVED: u8 = 0;
/// Exit status of `approve`: rejected on the phone.
const REJECTED: u8 = 1;
/// Exit status of `approve`: nobody answered in time.
const EXPIRED: u8 = 2;
/// Exit status of `approve`: it could not be asked or followed.
const FAILED: u8 = 3;

/// How long one long poll asks the appliance to hold the request.
const POLL: &str = "25";
/// Longest pause between attempts while the appliance cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long past the expiry `approve` keeps trying to learn the outcome.
const GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

fn text_or_stdin(value: Option<String>) -> anyhow::Result<String> {
    match value.as_deref() {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading stdin")?;
            Ok(text)
        }
        _ => Ok(value.unwrap_or_default()),
    }
}

fn refused(what: &str, answer: &Answer) -> String {
    let detail = answer.body["detail"].as_str().unwrap_or("request failed");
    let code = answer.body["error"].as_str().unwrap_or("error");
    format!("error: {what}: {detail} ({code}, HTTP {})", answer.status)
}

/// Sends one notification; prints its id.
pub(super) async fn notify(args: NotifyArgs, remote: &Remote) -> anyhow::Result<ExitCode> {
    let body = json!({
        "user_id": args.user,
        "device_id": args.device,
        "title": args.title,
        "body": text_or_stdin(args.body)?,
        "priority": args.priority,
        "kind": args.kind,
        "link": args.link,
    });
    let answer = remote.transport()?.send("POST", "/phone/notify", Some(body)).await?;
    if !(200..300).contains(&answer.status) {
        eprintln!("{}", refused("the notification was not sent", &answer));
        return Ok(ExitCode::FAILURE);
    }
    if remote.json {
        say(&answer.body.to_string());
    } else {
        say(answer.body["id"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks for an approval and waits for its outcome (the exit status).
pub(super) async fn approve(args: ApproveArgs, remote: &Remote) -> ExitCode {
    match ask_and_wait(args, remote).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(FAILED)
        }
    }
}

async fn ask_and_wait(args: ApproveArgs, remote: &Remote) -> anyhow::Result<u8> {
    let transport = remote.transport()?;
    let request = json!({
        "user_id": args.user,
        "title": args.title,
        "detail": text_or_stdin(args.detail)?,
        "timeout_s": args.timeout.as_secs(),
    });
    let answer = transport.send("POST", "/phone/approvals", Some(request)).await?;
    if !(200..300).contains(&answer.status) {
        eprintln!("{}", refused("the approval was not asked", &answer));
        return Ok(FAILED);
    }
    let created = answer.body;
    let id = created["id"].as_str().context("the appliance's answer has no approval id")?.to_owned();
    let code = created["code"].as_str().unwrap_or("?");
    if remote.json {
        say(&created.to_string());
    } else {
        say(&format!("Number to match: {code}  (approval {id}; {} must pick it on the phone)", args.user));
    }
    let expires_at = created["expires_at"].as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
    let deadline = expires_at.unwrap_or_else(chrono::Utc::now) + GRACE;
    let outcome = follow(&transport, &id, deadline).await?;
    report(&outcome, remote.json);
    Ok(match outcome["status"].as_str() {
        Some("approved") => APPROVED,
        Some("rejected") => REJECTED,
        Some("expired") => EXPIRED,
        _ => FAILED,
    })
}

/// Long-polls the approval until it is decided; network failures and
/// answers of an appliance that is restarting are waited out until
/// `deadline`.
async fn follow(transport: &Transport, id: &str, deadline: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Value> {
    let path = format!("/phone/approvals/{id}?wait={POLL}");
    let mut backoff = Duration::from_millis(250);
    loop {
        match transport.send("GET", &path, None).await {
            Ok(answer) if (200..300).contains(&answer.status) => {
                backoff = Duration::from_millis(250);
                if answer.body["status"] != "pending" {
                    return Ok(answer.body);
                }
                continue;
            }
            Ok(answer) if answer.status < 500 && answer.status != 429 => {
                anyhow::bail!("{}", refused("following the approval", &answer).trim_start_matches("error: "))
            }
            Ok(answer) => eprintln!("the appliance answered HTTP {}; trying again", answer.status),
            Err(e) => eprintln!("{e:#}; trying again"),
        }
        if chrono::Utc::now() > deadline {
            anyhow::bail!("gave up: the appliance could not be reached until after the approval expired");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn report(outcome: &Value, json: bool) {
    if json {
        say(&outcome.to_string());
        return;
    }
    let by = outcome["decided_by"].as_str().unwrap_or("?");
    say(&match outcome["status"].as_str().unwrap_or("?") {
        "approved" => format!("Approved on {by}."),
        "rejected" => format!("Rejected on {by} ({}).", outcome["reason"].as_str().unwrap_or("declined")),
        "expired" => format!("Expired: nobody answered by {}.", outcome["expires_at"].as_str().unwrap_or("?")),
        other => format!("Ended as {other}."),
    });
}

/// Prints a line on stdout, flushed at once (a pipeline's log shows the
/// number while the step waits); a closed stdout does not change the
/// outcome, which is the exit status.
fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
