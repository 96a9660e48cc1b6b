//! `topdog store copy`: moves an appliance's records from its embedded sled
//! database into PostgreSQL (to grow to several nodes), with the appliance
//! stopped. The target must be empty; ids given afterwards come after every
//! copied one. The sled database is left as it was.

use super::{Connection, Store, StoreError, Table};
use std::path::Path;

/// Why a copy could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyError {
    /// A database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The target already holds an appliance.
    #[error("the target store already holds records ({0}); copy into an empty one")]
    NotEmpty(String),
    /// Only sled → PostgreSQL is a copy this version makes.
    #[error("only --from sled --to postgres is supported")]
    Unsupported,
    /// The source holds nothing.
    #[error("the source store holds no records ({0})")]
    Empty(String),
}

/// The backends a copy runs between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Backend {
    /// The data directory's embedded database.
    Sled,
    /// The `--database-url` database.
    Postgres,
}

/// How many records each table held, as copied.
pub(crate) type Copied = Vec<(String, usize)>;

/// Copies every record from `from` (sled at `database`) to `to`
/// (PostgreSQL at `connection`).
pub(crate) async fn copy(
    from: Backend,
    to: Backend,
    database: &Path,
    connection: &Connection,
) -> Result<Copied, CopyError> {
    if (from, to) != (Backend::Sled, Backend::Postgres) {
        return Err(CopyError::Unsupported);
    }
    let source = Store::open(database)?;
    if source.count(Table::Meta) == 0 && source.count(Table::Devices) == 0 {
        return Err(CopyError::Empty(database.display().to_string()));
    }
    let dump = source.export().await?;
    let next_id = source.next_id()?;
    drop(source);
    let target = Store::connect(connection).await?;
    if target.count(Table::Meta) > 0 || target.count(Table::Devices) > 0 {
        return Err(CopyError::NotEmpty("the --database-url database".into()));
    }
    target.import(&dump, next_id).await?;
    Ok(dump.iter().map(|(name, records)| (name.clone(), records.len())).collect())
}
