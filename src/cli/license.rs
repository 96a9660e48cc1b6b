//! `topdog license …`: the customer's side (activate, status, this
//! machine's fingerprint) through the running appliance, and the vendor's
//! offline tools (keygen, issue).

use super::{show, Remote};
use crate::licensing::key::{self as license, ExpiryKind, Payload};
use crate::store::datadir;
use anyhow::Context as _;
use chrono::NaiveDate;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The license subcommands.
#[derive(Debug, clap::Subcommand)]
pub(super) enum LicenseAction {
    /// Activate a license key on the running appliance.
    Activate {
        /// The license key (TDLIC1.…).
        key: String,
    },
    /// Show the license and the seats in use.
    Status,
    /// Print this machine's fingerprint (for a machine-bound license).
    MachineId,
    /// Vendor: make a new signing key pair (FILE private, FILE.pub public).
    Keygen {
        /// Where to write the private key (mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Vendor: sign a license key and print it.
    Issue {
        /// The vendor's private key file.
        #[arg(long)]
        signing_key: PathBuf,
        /// Customer name.
        #[arg(long)]
        customer: String,
        /// Seats bought.
        #[arg(long)]
        seats: u32,
        /// Expiry date (YYYY-MM-DD).
        #[arg(long)]
        expires: Option<NaiveDate>,
        /// The expiry ends updates only: builds released before it stay licensed.
        #[arg(long, requires = "expires")]
        updates_only: bool,
        /// Bind to a machine fingerprint (from `topdog license machine-id`).
        #[arg(long)]
        machine: Option<String>,
        /// License id (default: a new random id).
        #[arg(long)]
        license_id: Option<String>,
        /// Issue date (default: today).
        #[arg(long)]
        issued: Option<NaiveDate>,
    },
}

/// Runs a license subcommand.
pub(super) async fn run(action: LicenseAction, remote: &Remote) -> anyhow::Result<ExitCode> {
    match action {
        LicenseAction::Activate { key } => {
            let body = serde_json::json!({ "license_key": key });
            show(remote.transport()?.send("POST", "/admin/license", Some(body)).await?)
        }
        LicenseAction::Status => show(remote.transport()?.send("GET", "/admin/license", None).await?),
        LicenseAction::MachineId => {
            let fp = license::machine_fingerprint().context("this machine has no /etc/machine-id")?;
            println!("{fp}");
            Ok(ExitCode::SUCCESS)
        }
        LicenseAction::Keygen { out } => keygen(&out),
        LicenseAction::Issue { signing_key, customer, seats, expires, updates_only, machine, license_id, issued } => {
            let key = read_signing_key(&signing_key)?;
            let payload = Payload {
                v: 1,
                license_id: license_id
                    .unwrap_or_else(|| format!("L-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])),
                customer,
                seats,
                issued: issued.unwrap_or_else(|| chrono::Utc::now().date_naive()),
                expires,
                expiry_kind: if updates_only { ExpiryKind::Updates } else { ExpiryKind::License },
                machine,
                kid: String::new(),
            };
            println!("{}", license::issue(&key, payload));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_signing_key(path: &Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    license::parse_private(&text).with_context(|| format!("{} is not a Top Dog vendor private key", path.display()))
}

fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!out.exists(), "{} exists; not overwriting a key", out.display());
    let key = license::generate_key();
    let b64 = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    let kid = license::kid_of(&key.verifying_key());
    let private = format!("# Top Dog vendor PRIVATE key {kid}: keep offline, never commit\n{}\n", b64(&key.to_bytes()));
    let public = format!("# Top Dog vendor public key {kid}\n{}\n", b64(key.verifying_key().as_bytes()));
    datadir::write_secret(out, private.as_bytes())?;
    let public_path = PathBuf::from(format!("{}.pub", out.display()));
    datadir::write_public(&public_path, public.as_bytes())?;
    println!("key id {kid}\nprivate key {}\npublic key  {}", out.display(), public_path.display());
    println!("Embed the public key by copying it to license-keys/vendor-<name>.pub and rebuilding.");
    Ok(ExitCode::SUCCESS)
}
