//! `topdog tokens create|list|revoke`: scoped API tokens for build systems,
//! through the running appliance (admin socket, or `--url` with the admin
//! token or an `admin`-scoped one).

use super::{show, Remote};
use std::process::ExitCode;

/// The token subcommands.
#[derive(Debug, clap::Subcommand)]
pub(super) enum TokenAction {
    /// Make a token and print it (only this once; only its hash is kept).
    Create {
        /// Its name (letters, digits, '.', '_', '-'), named in every audit line.
        #[arg(long)]
        name: String,
        /// What it may do: notify, approvals, pairing, devices:read,
        /// devices:write, admin (repeat the flag for several).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Only these users may be notified and asked (repeatable).
        #[arg(long = "user")]
        users: Vec<String>,
        /// How long it lasts (90d, 12h); default until revoked.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token at once.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// Runs a token subcommand.
pub(super) async fn run(action: TokenAction, remote: &Remote) -> anyhow::Result<ExitCode> {
    let t = remote.transport()?;
    match action {
        TokenAction::Create { name, scopes, users, expires } => {
            let body = serde_json::json!({"name": name, "scopes": scopes, "users": users, "expires_in": expires});
            let answer = t.send("POST", "/admin/tokens", Some(body)).await?;
            if remote.json || !(200..300).contains(&answer.status) {
                return show(answer);
            }
            println!("{}", answer.body["token"].as_str().unwrap_or_default());
            eprintln!("Token `{name}` created. It is shown only this once: store it as a secret (TOPDOG_TOKEN).");
            Ok(ExitCode::SUCCESS)
        }
        TokenAction::List => {
            let answer = t.send("GET", "/admin/tokens", None).await?;
            if remote.json || !(200..300).contains(&answer.status) {
                return show(answer);
            }
            print_list(&answer.body);
            Ok(ExitCode::SUCCESS)
        }
        TokenAction::Revoke { name } => show(t.send("DELETE", &format!("/admin/tokens/{name}"), None).await?),
    }
}

fn print_list(body: &serde_json::Value) {
    println!("{:<20} {:<32} {:<16} {:<21} {:<21} {:<21}", "NAME", "SCOPES", "USERS", "CREATED", "LAST USED", "EXPIRES");
    for t in body["tokens"].as_array().into_iter().flatten() {
        let list = |k: &str, empty: &str| {
            let items: Vec<&str> = t[k].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
            if items.is_empty() {
                empty.to_owned()
            } else {
                items.join(",")
            }
        };
        let time = |k: &str, none: &str| t[k].as_str().map_or(none.to_owned(), |s| s.chars().take(19).collect());
        println!(
            "{:<20} {:<32} {:<16} {:<21} {:<21} {:<21}",
            t["name"].as_str().unwrap_or("-"),
            list("scopes", "-"),
            list("users", "any"),
            time("created_at", "-"),
            time("last_used_at", "never"),
            time("expires_at", "never"),
        );
    }
}
