//! `topdog audit verify`: checks the audit log's hash chain, in the data
//! directory's file or, for nodes sharing PostgreSQL, in the store.

use super::cluster;
use std::process::ExitCode;

/// Checks the chain and says what it found (exit code 2 when broken).
pub(super) async fn verify(
    data_dir: &std::path::Path,
    database: Option<&cluster::Database>,
) -> anyhow::Result<ExitCode> {
    let report = match database {
        Some(database) => crate::audit::shared::verify(&crate::store::Store::connect(&database.connection()?).await?),
        None => crate::audit::verify(&data_dir.join("audit.jsonl")),
    };
    match report {
        Ok(report) => {
            println!("audit log OK: {} entries, chain intact", report.lines);
            for line in &report.torn {
                println!("  line {line} was torn by a crash; kept, and marked by the entry after it");
            }
            if let Some(line) = report.torn_tail {
                println!("  line {line} (the last) was torn by a crash; the appliance marks it when it next starts");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("audit log FAILED: {e}");
            Ok(ExitCode::from(2))
        }
    }
}
