//! The PostgreSQL schema, as numbered migrations applied in order at start
//! (or alone by `topdog migrate`), each once, in one transaction under an
//! advisory lock so that nodes starting together apply it once. A database
//! migrated by a newer version is refused, not guessed at.

use crate::store::StoreError;

/// The advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x7d06_0000;

/// Every migration: `(version, what it does, SQL)`.
const MIGRATIONS: [(i32, &str, &str); 3] = [
    (1, "the appliance's tables and id sequence", V1),
    (2, "console sessions shared by the nodes", V2),
    (3, "one audit log for all the nodes", V3),
];

/// One `(key, value)` table per kind of record; keys sort bytewise, as sled's.
const V1: &str = r#"
CREATE SEQUENCE topdog_ids START 1;
CREATE TABLE invites (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE devices (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE revoked_tokens (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE meta (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE seats (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE notifications (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE inbox (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE approvals (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE commands (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE user_devices (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE push_subscriptions (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE receipts (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE escalations (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE device_numbers (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE api_tokens (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE api_token_hashes (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE hook_deliveries (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE pending_approvals (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE people (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
CREATE TABLE nodes (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
"#;

/// Console sessions, so that a browser may reach any node.
const V2: &str = r#"
CREATE TABLE sessions (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
"#;

/// The audit log's entries, so that the nodes keep one chain.
const V3: &str = r#"
CREATE TABLE audit (key text COLLATE "C" PRIMARY KEY, value json NOT NULL);
"#;

/// The newest schema version this build knows.
pub(crate) fn latest() -> i32 {
    MIGRATIONS.iter().map(|(v, _, _)| *v).max().unwrap_or_default()
}

/// Applies the migrations the database lacks; the versions applied now.
pub(crate) async fn apply(client: &mut deadpool_postgres::Object) -> Result<Vec<i32>, StoreError> {
    let txn = client.transaction().await?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    txn.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations \
         (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let current: i32 = txn.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[]).await?.get(0);
    if current > latest() {
        return Err(StoreError::Schema(format!(
            "the database is at schema version {current}, newer than this build knows ({}): run a newer topdog",
            latest()
        )));
    }
    let mut applied = Vec::new();
    for (version, description, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        txn.batch_execute(sql).await?;
        txn.execute("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)", &[version, description])
            .await?;
        tracing::info!(version, description, "applied a database migration");
        applied.push(*version);
    }
    txn.commit().await?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_table_has_a_postgres_table() {
        for (_, name) in crate::store::table::TABLES {
            let create = format!("CREATE TABLE {name} (");
            assert!(super::MIGRATIONS.iter().any(|(_, _, sql)| sql.contains(&create)), "{name} has no table");
        }
    }
}
