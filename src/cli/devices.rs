//! `topdog devices …`: list, revoke, suspend and reactivate phones, and
//! approve or reject a new one.

use super::client::Answer;
use super::{show, DeviceAction, Remote};
use std::process::ExitCode;

pub(super) async fn devices(action: DeviceAction, remote: &Remote) -> anyhow::Result<ExitCode> {
    let t = remote.transport()?;
    let answer = match action {
        DeviceAction::List { user } => {
            let query = user.map(|u| format!("?user_id={u}")).unwrap_or_default();
            let answer = t.send("GET", &format!("/phone/devices{query}"), None).await?;
            return show_devices(remote, answer);
        }
        DeviceAction::Revoke { id } => t.send("DELETE", &format!("/phone/devices/{id}"), None).await?,
        DeviceAction::Suspend { id } => t.send("POST", &format!("/phone/devices/{id}/suspend"), None).await?,
        DeviceAction::Reactivate { id } => t.send("POST", &format!("/phone/devices/{id}/reactivate"), None).await?,
        DeviceAction::Approve { id } => t.send("POST", &format!("/phone/devices/{id}/approve"), None).await?,
        DeviceAction::Reject { id } => t.send("POST", &format!("/phone/devices/{id}/reject"), None).await?,
    };
    show(answer)
}

fn show_devices(remote: &Remote, answer: Answer) -> anyhow::Result<ExitCode> {
    if remote.json || !(200..300).contains(&answer.status) {
        return show(answer);
    }
    println!("{:<24} {:<16} {:<20} {:<16} {:<25}", "DEVICE", "USER", "NAME", "STATUS", "LAST SEEN");
    for d in answer.body["devices"].as_array().into_iter().flatten() {
        let field = |k: &str| d[k].as_str().unwrap_or("-").to_owned();
        println!(
            "{:<24} {:<16} {:<20} {:<16} {:<25}",
            field("device_id"),
            field("user_id"),
            field("device_name"),
            field("status"),
            field("last_seen_at")
        );
    }
    Ok(ExitCode::SUCCESS)
}
