//! `topdog serve`: builds the appliance from its configuration, prints the
//! banner (and the ready file), and serves until SIGTERM or Ctrl-C; and the
//! same configuration for a program that runs the appliance in-process.

use super::{banner, ready, Cli, Command};
use crate::app::App;
use crate::config::{Config, Settings};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// The configuration `topdog serve ARGS…` would run with (its flags, the
/// environment and its `--config` file), for a program that runs the
/// appliance inside its own process (the tests).
pub fn serve_config<I: IntoIterator<Item = String>>(args: I) -> anyhow::Result<Config> {
    let argv = ["topdog".to_owned(), "serve".to_owned()].into_iter().chain(args);
    match Cli::try_parse_from(argv)?.command {
        Command::Serve { config, settings, .. } => Ok(Config::load(*settings, config.as_deref())?),
        _ => anyhow::bail!("not the serve command"),
    }
}

pub(super) async fn serve(
    settings: Settings,
    config_file: Option<PathBuf>,
    ready: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(settings, config_file.as_deref())?;
    let app = App::build(config).await?;
    banner::print(app.start_info());
    if let Some(path) = ready {
        ready::write(&path, app.start_info())?;
    }
    app.run_until(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
