//! `topdog init`, `topdog backup` and `topdog restore`: preparing a data
//! directory before the first start (the installer uses it to show the admin
//! token), and backing one up and restoring it.

use super::Remote;
use crate::auth::admin::AdminToken;
use crate::auth::tokens::Tokens;
use crate::pki::Ca;
use crate::store::datadir::{self, DataDir};
use anyhow::Context as _;
use std::path::Path;
use std::process::ExitCode;

/// Creates the data directory's keys, CA and admin token (idempotent).
pub(super) fn init(data_dir: &Path) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(data_dir).with_context(|| format!("data directory {}", data_dir.display()))?;
    crate::store::upgrade::prepare(&dir)?;
    Ca::load_or_create(&dir).context("appliance CA")?;
    Tokens::load_or_create(&dir, std::time::Duration::from_secs(1), crate::clock::Clock::system())
        .context("JWT signing key")?;
    let admin_token = std::env::var("ADMIN_TOKEN").ok();
    let loaded = AdminToken::load_or_create(&dir, admin_token.as_deref()).context("admin token")?;
    println!("Data directory {} is ready.", dir.root().display());
    match loaded.generated {
        Some(token) => println!("Admin token (shown only this once; only its hash is stored):\n  {token}"),
        None => println!("The admin token was already set; it is unchanged."),
    }
    Ok(ExitCode::SUCCESS)
}

/// Saves a backup of the running appliance to `file` (mode 0600).
pub(super) async fn backup(remote: &Remote, file: &Path) -> anyhow::Result<ExitCode> {
    let answer = remote.transport()?.send("GET", "/admin/backup", None).await?;
    if !(200..300).contains(&answer.status) {
        return super::show(answer);
    }
    let text = serde_json::to_string(&answer.body)?;
    datadir::write_secret(file, text.as_bytes()).with_context(|| format!("writing {}", file.display()))?;
    println!(
        "Backup written to {} ({} bytes). It holds the appliance's keys: keep it safe.",
        file.display(),
        text.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Restores `file` into the new data directory `data_dir` (stopped).
pub(super) async fn restore(file: &Path, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(data_dir)?;
    if std::os::unix::net::UnixStream::connect(dir.admin_socket()).is_ok() {
        anyhow::bail!("an appliance is running on {}; stop it first", data_dir.display());
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let backup: crate::store::backup::Backup =
        serde_json::from_str(&text).context("this file is not a Top Dog backup")?;
    crate::store::backup::restore(&backup, &dir).await?;
    crate::store::upgrade::prepare(&dir)?;
    println!("Restored {} into {}.", file.display(), dir.root().display());
    Ok(ExitCode::SUCCESS)
}
