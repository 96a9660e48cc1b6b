//! The command line (clap): `topdog serve` and the admin subcommands, which
//! talk to the running appliance through `client`; `audit verify` works on
//! the files directly.

mod audit;
pub mod banner;
pub(crate) mod client;
mod cluster;
mod devices;
mod invites;
mod license;
mod maintenance;
mod pipeline;
mod ready;
mod serve;
mod tokens;

pub use serve::serve_config;

use crate::cli::client::{Answer, Transport};
use crate::config::Settings;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Top Dog appliance: pair phones with the Top Dog IDE, on your own machine.
#[derive(Debug, Parser)]
#[command(name = "topdog", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text, or as one JSON object per line (for log shippers).
    #[arg(long, env = "TOPDOG_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
}

/// How admin subcommands reach the appliance.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Remote {
    /// Data directory of the running appliance (its admin socket is used).
    #[arg(long, env = "TOPDOG_DATA_DIR", default_value = "topdog-data", global = true)]
    data_dir: PathBuf,
    /// Use the HTTPS API at this URL instead of the admin socket.
    #[arg(long, env = "TOPDOG_URL", global = true)]
    url: Option<String>,
    /// Admin token for --url.
    #[arg(long, env = "TOPDOG_ADMIN_TOKEN", hide_env_values = true, global = true)]
    admin_token: Option<String>,
    /// API token (tdapi_…) for --url; used instead of --admin-token.
    #[arg(long, env = "TOPDOG_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// CA certificate to trust for --url (default: DATA_DIR/ca.pem if present).
    #[arg(long, env = "TOPDOG_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// Print the raw JSON answer.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the appliance (HTTPS API, pairing, admin socket).
    Serve {
        /// TOML configuration file (flags and environment override it).
        #[arg(long, env = "TOPDOG_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Box<Settings>,
        /// Once listening, write the addresses (JSON: api_url, base_url,
        /// mqtt_url, ca_file, admin_socket, data_dir, pid; never a secret)
        /// to this file, for scripts and tests that start the appliance.
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Pairing invites.
    Invite {
        #[command(subcommand)]
        action: InviteAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Paired devices.
    Devices {
        #[command(subcommand)]
        action: DeviceAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// The running appliance's status.
    Status {
        #[command(flatten)]
        remote: Remote,
    },
    /// The license: activate, status; the vendor's keygen and issue.
    License {
        #[command(subcommand)]
        action: license::LicenseAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Prepare a data directory (keys, CA, admin token) without serving.
    Init {
        /// Data directory to prepare.
        #[arg(long, env = "TOPDOG_DATA_DIR", default_value = "topdog-data")]
        data_dir: PathBuf,
    },
    /// Save a consistent backup of the running appliance.
    Backup {
        /// Where to write it (mode 0600).
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Restore a backup into a new data directory (appliance stopped).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The data directory to create.
        #[arg(long, env = "TOPDOG_DATA_DIR", default_value = "topdog-data")]
        data_dir: PathBuf,
    },
    /// Apply the PostgreSQL schema's migrations (serve applies them too).
    Migrate {
        #[command(flatten)]
        database: cluster::Database,
    },
    /// The records: copy them from sled into PostgreSQL.
    Store {
        #[command(subcommand)]
        action: cluster::StoreAction,
    },
    /// The keys every node of one appliance shares: export, import.
    Keys {
        #[command(subcommand)]
        action: cluster::KeysAction,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Scoped API tokens for build systems.
    Tokens {
        #[command(subcommand)]
        action: tokens::TokenAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Send a notification to a user's phones (prints its id).
    Notify {
        #[command(flatten)]
        args: pipeline::NotifyArgs,
        #[command(flatten)]
        remote: Remote,
    },
    /// Ask a user's phone to approve; exits 0 approved, 1 rejected, 2
    /// expired, 3 error.
    Approve {
        #[command(flatten)]
        args: pipeline::ApproveArgs,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
enum InviteAction {
    /// Text a pairing link to a phone.
    Send {
        /// Phone number, international form (+14155552671).
        phone: String,
        /// The IDE user.
        #[arg(long)]
        user: String,
        /// The user's name, shown on the phone.
        #[arg(long)]
        name: String,
    },
    /// Show a pairing QR code in this terminal.
    Qr {
        /// The IDE user.
        #[arg(long)]
        user: String,
        /// The user's name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show an invite's status.
    Status {
        #[arg(allow_hyphen_values = true)]
        code: String,
    },
    /// Send an SMS invite again with a new expiry.
    Resend {
        #[arg(allow_hyphen_values = true)]
        code: String,
    },
    /// Cancel a pending invite.
    Cancel {
        #[arg(allow_hyphen_values = true)]
        code: String,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceAction {
    /// List paired devices.
    List {
        /// Only this user's devices.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a device for good.
    Revoke {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Suspend a device.
    Suspend {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Reactivate a suspended device.
    Reactivate {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Let in a new phone that waits for approval.
    Approve {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Refuse a new phone that waits for approval (it is revoked).
    Reject {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Check the audit log's hash chain.
    Verify {
        /// Data directory holding audit.jsonl.
        #[arg(long, env = "TOPDOG_DATA_DIR", default_value = "topdog-data")]
        data_dir: PathBuf,
        /// The PostgreSQL database of several nodes: check the log they
        /// share there instead.
        #[arg(long, env = "TOPDOG_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// A CA certificate (PEM) to trust for the database's TLS.
        #[arg(long, env = "TOPDOG_DATABASE_CA_CERT")]
        database_ca_cert: Option<PathBuf>,
    },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// For people: time, level, span fields, message.
    Text,
    /// One JSON object a line, with the span (request id) fields.
    Json,
}

/// Runs the command line; the process exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at `RUST_LOG` (default info). Lines an operator cannot act
/// on stay out unless `RUST_LOG` names their crate: rustls warns for every
/// client that sends an IP address as its TLS server name, which curl and
/// wrk do on every connection to `https://127.0.0.1`; rumqttd's router logs
/// an error for a phone's packets that reach it just after the phone's
/// DISCONNECT ("no-connection id … is already gone"); the gateway has
/// already checked whatever a router could complain of, and a router that
/// stops shows as the appliance's broker link closing.
fn init_logging(format: LogFormat) {
    let asked = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    for (krate, quiet) in [
        ("sled", "sled=warn"),
        ("rustls", "rustls=error"),
        ("rumqttd", "rumqttd=warn"),
        ("rumqttd", "rumqttd::router::routing=off"),
    ] {
        if !asked.contains(krate) {
            if let Ok(directive) = quiet.parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config, settings, ready_file } => serve::serve(*settings, config, ready_file).await,
        Command::Migrate { database } => cluster::migrate(&database).await,
        Command::Store { action } => cluster::store(action).await,
        Command::Keys { action } => cluster::keys(action),
        Command::Invite { action, remote } => invites::invite(action, &remote).await,
        Command::Devices { action, remote } => devices::devices(action, &remote).await,
        Command::Status { remote } => show(remote.transport()?.send("GET", "/admin/status", None).await?),
        Command::License { action, remote } => license::run(action, &remote).await,
        Command::Init { data_dir } => maintenance::init(&data_dir),
        Command::Backup { file, remote } => maintenance::backup(&remote, &file).await,
        Command::Restore { file, data_dir } => maintenance::restore(&file, &data_dir).await,
        Command::Audit { action: AuditAction::Verify { data_dir, database_url, database_ca_cert } } => {
            let database = database_url.map(|url| cluster::Database::new(url, database_ca_cert));
            audit::verify(&data_dir, database.as_ref()).await
        }
        Command::Tokens { action, remote } => tokens::run(action, &remote).await,
        Command::Notify { args, remote } => pipeline::notify(args, &remote).await,
        Command::Approve { args, remote } => Ok(pipeline::approve(args, &remote).await),
    }
}

impl Remote {
    /// The transport these options describe.
    pub(crate) fn transport(&self) -> anyhow::Result<Transport> {
        match &self.url {
            Some(url) => {
                let token = self.token.clone().or_else(|| self.admin_token.clone()).ok_or_else(|| {
                    anyhow::anyhow!("--url needs --token (TOPDOG_TOKEN) or --admin-token (TOPDOG_ADMIN_TOKEN)")
                })?;
                let default_ca = self.data_dir.join("ca.pem");
                let ca = self.ca_cert.clone().or_else(|| default_ca.exists().then_some(default_ca));
                Transport::https(url, token, ca.as_deref())
            }
            None => Ok(Transport::Socket(self.data_dir.join("admin.sock"))),
        }
    }
}

/// Prints an answer; a non-2xx answer is an error exit.
pub(crate) fn show(answer: Answer) -> anyhow::Result<ExitCode> {
    if !(200..300).contains(&answer.status) {
        let detail = answer.body["detail"].as_str().unwrap_or("request failed");
        let code = answer.body["error"].as_str().unwrap_or("error");
        eprintln!("error: {detail} ({code}, HTTP {})", answer.status);
        return Ok(ExitCode::FAILURE);
    }
    println!("{}", serde_json::to_string_pretty(&answer.body)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn invite_codes_and_device_ids_may_start_with_a_hyphen() {
        for args in [["topdog", "invite", "status", "-0aBc"], ["topdog", "devices", "revoke", "-phone"]] {
            assert!(Cli::try_parse_from(args).is_ok(), "{args:?}");
        }
    }
}
