//! `topdog invite …`: send, show as a QR code, check, resend and cancel
//! pairing invites.

use super::client::Answer;
use super::{show, InviteAction, Remote};
use std::process::ExitCode;

pub(super) async fn invite(action: InviteAction, remote: &Remote) -> anyhow::Result<ExitCode> {
    let t = remote.transport()?;
    let answer = match action {
        InviteAction::Send { phone, user, name } => {
            let body = serde_json::json!({"phone_number": phone, "user_id": user, "user_name": name});
            t.send("POST", "/phone/pairing/send-sms", Some(body)).await?
        }
        InviteAction::Qr { user, name } => {
            let body = serde_json::json!({"user_id": user, "user_name": name});
            let answer = t.send("POST", "/phone/pairing/generate-qr", Some(body)).await?;
            return show_qr(remote, answer);
        }
        InviteAction::Status { code } => t.send("GET", &format!("/phone/pairing/invite/{code}"), None).await?,
        InviteAction::Resend { code } => t.send("POST", &format!("/phone/pairing/resend-sms/{code}"), None).await?,
        InviteAction::Cancel { code } => t.send("DELETE", &format!("/phone/pairing/invite/{code}"), None).await?,
    };
    show(answer)
}

fn show_qr(remote: &Remote, answer: Answer) -> anyhow::Result<ExitCode> {
    if remote.json || !(200..300).contains(&answer.status) {
        return show(answer);
    }
    let url = answer.body["pairing_url"].as_str().unwrap_or_default();
    println!("{}", crate::pairing::qr::terminal(url)?);
    println!("Scan with the phone's camera, or open: {url}");
    if let Some(otp) = answer.body["otp"].as_str() {
        println!("Code to type on the phone: {otp}");
    }
    println!("Expires at {}", answer.body["expires_at"].as_str().unwrap_or("?"));
    Ok(ExitCode::SUCCESS)
}
