//! The commands for growing to several nodes on one PostgreSQL database:
//! `topdog migrate` (the schema alone), `topdog store copy` (an appliance's
//! records from sled into PostgreSQL) and `topdog keys export|import` (one
//! appliance's keys for every node).

use crate::store::backup::{self, Keys};
use crate::store::copy::{self, Backend};
use crate::store::datadir::{self, DataDir};
use crate::store::{Connection, Store};
use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where the PostgreSQL database is.
#[derive(Debug, Clone, Args)]
pub(super) struct Database {
    /// The database (`postgres://user:password@host:port/db`).
    #[arg(long, env = "TOPDOG_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// A CA certificate (PEM) to trust for the database's TLS.
    #[arg(long, env = "TOPDOG_DATABASE_CA_CERT")]
    database_ca_cert: Option<PathBuf>,
}

impl Database {
    /// The database at `url`, its TLS trusting `ca_cert` when given.
    pub(super) fn new(url: String, ca_cert: Option<PathBuf>) -> Database {
        Database { database_url: url, database_ca_cert: ca_cert }
    }

    /// How to reach it.
    pub(super) fn connection(&self) -> anyhow::Result<Connection> {
        let ca = match &self.database_ca_cert {
            Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
            None => None,
        };
        Ok(Connection { url: self.database_url.clone(), tls: crate::pki::tls::client(ca.as_deref())? })
    }
}

/// `topdog store …`.
#[derive(Debug, Subcommand)]
pub(super) enum StoreAction {
    /// Copy a stopped appliance's records from its data directory's
    /// database into an empty PostgreSQL one.
    Copy {
        /// Where the records are now.
        #[arg(long, value_enum)]
        from: Backend,
        /// Where they go.
        #[arg(long, value_enum)]
        to: Backend,
        /// The appliance's data directory.
        #[arg(long, env = "TOPDOG_DATA_DIR", default_value = "topdog-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        database: Database,
    },
}

/// `topdog keys …`.
#[derive(Debug, Subcommand)]
pub(super) enum KeysAction {
    /// Write this data directory's keys (CA, signing keys, certificate,
    /// admin token hash) to a file (mode 0600), for the other nodes.
    Export {
        /// Where to write them.
        file: PathBuf,
        /// The data directory.
        #[arg(long, env = "TOPDOG_DATA_DIR", default_value = "topdog-data")]
        data_dir: PathBuf,
    },
    /// Put exported keys into a new node's data directory (before its first
    /// start).
    Import {
        /// The exported keys.
        file: PathBuf,
        /// The new node's data directory.
        #[arg(long, env = "TOPDOG_DATA_DIR", default_value = "topdog-data")]
        data_dir: PathBuf,
    },
}

/// Brings the database's schema up to date.
pub(super) async fn migrate(database: &Database) -> anyhow::Result<ExitCode> {
    let applied = Store::migrate(&database.connection()?).await?;
    match applied.as_slice() {
        [] => println!("The database is up to date (schema version {}).", crate::store::migrations::latest()),
        versions => println!(
            "Applied migrations {versions:?}; the schema is at version {}.",
            crate::store::migrations::latest()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `topdog store …`.
pub(super) async fn store(action: StoreAction) -> anyhow::Result<ExitCode> {
    let StoreAction::Copy { from, to, data_dir, database } = action;
    let dir = DataDir::open(&data_dir)?;
    if std::os::unix::net::UnixStream::connect(dir.admin_socket()).is_ok() {
        anyhow::bail!("an appliance is running on {}; stop it first", data_dir.display());
    }
    let entries = crate::audit::file::entries(&dir.audit_log())
        .context("reading the audit log (check it with `topdog audit verify`)")?;
    let copied = copy::copy(from, to, &dir.database(), &database.connection()?).await?;
    let total: usize = copied.iter().map(|(_, n)| n).sum();
    println!("Copied {total} records from {} into PostgreSQL:", dir.database().display());
    for (table, n) in copied.iter().filter(|(_, n)| *n > 0) {
        println!("  {table:<20} {n}");
    }
    let target = Store::connect(&database.connection()?).await?;
    let lines = crate::audit::shared::copy(&entries, &target).await?;
    println!("and {lines} audit log entries from {}, their chain continued.", dir.audit_log().display());
    println!("Start the appliance with --database-url to use them.");
    Ok(ExitCode::SUCCESS)
}

/// Runs `topdog keys …`.
pub(super) fn keys(action: KeysAction) -> anyhow::Result<ExitCode> {
    match action {
        KeysAction::Export { file, data_dir } => export(&file, &data_dir),
        KeysAction::Import { file, data_dir } => import(&file, &data_dir),
    }
}

fn export(file: &Path, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(data_dir)?;
    let keys = backup::export_keys(&dir)?;
    datadir::write_secret(file, serde_json::to_string(&keys)?.as_bytes())
        .with_context(|| format!("writing {}", file.display()))?;
    println!("Keys written to {}. They are the appliance's secrets: keep the file safe.", file.display());
    Ok(ExitCode::SUCCESS)
}

fn import(file: &Path, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(data_dir)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let keys: Keys = serde_json::from_str(&text).context("this file is not exported Top Dog keys")?;
    backup::import_keys(&keys, &dir)?;
    println!("Keys placed in {}; start this node with the same --database-url.", dir.root().display());
    Ok(ExitCode::SUCCESS)
}
