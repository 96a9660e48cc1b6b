//! One writing transaction in progress on PostgreSQL: the records it names
//! are read as it begins (one statement for all), other reads go to the
//! database at once (seeing this transaction's own writes first); writes
//! are held and sent as one statement with the commit just behind it, so
//! that a transaction of n writes costs PostgreSQL one statement and one
//! round trip for them, not n, while it holds the writers' lock. It runs in
//! parts (the transactions of a group, `group`): a part's writes are held
//! apart until it ends, then kept or set aside.

use super::{name, wait, TABLES};
use crate::store::table::Table;
use crate::store::Fault;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// What the held writes leave of each record they touch (the writes sent
/// at the commit), or what a read ahead found (None: no such record).
pub(super) type Records = HashMap<(Table, String), Option<Vec<u8>>>;

/// One transaction in progress.
pub(in crate::store) struct PgTx<'a> {
    client: &'a deadpool_postgres::ClientWrapper,
    handle: &'a tokio::runtime::Handle,
    /// The writes of the parts that ended and were kept.
    written: RefCell<Records>,
    /// The writes of the part running.
    part: RefCell<Records>,
    read_ahead: Records,
}

/// `INSERT … ON CONFLICT UPDATE` of one record of `table`.
pub(super) fn upsert(table: Table) -> String {
    format!(
        "INSERT INTO {} (key, value) VALUES ($1, $2::text::json) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        name(table)
    )
}

impl<'a> PgTx<'a> {
    /// A transaction on `client` that has read ahead what `read_ahead`
    /// holds.
    pub(super) fn new(
        client: &'a deadpool_postgres::ClientWrapper,
        handle: &'a tokio::runtime::Handle,
        read_ahead: Records,
    ) -> PgTx<'a> {
        PgTx { client, handle, written: RefCell::default(), part: RefCell::default(), read_ahead }
    }

    /// Ends the part running: its writes are kept, or set aside.
    pub(super) fn end_part(&self, keep: bool) {
        let part = std::mem::take(&mut *self.part.borrow_mut());
        if keep {
            self.written.borrow_mut().extend(part);
        }
    }

    /// The writes kept, each record's last state, to send before the
    /// commit.
    pub(super) fn into_writes(self) -> Records {
        self.written.into_inner()
    }

    pub(in crate::store) fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, Fault> {
        let record = (table, key.to_owned());
        let (part, written) = (self.part.borrow(), self.written.borrow());
        if let Some(known) = part.get(&record).or(written.get(&record)).or(self.read_ahead.get(&record)) {
            return Ok(known.clone());
        }
        let found = wait(self.handle, read_all(self.client, &[record])).map_err(Fault::Postgres)?;
        Ok(found.into_values().next().flatten())
    }

    pub(in crate::store) fn put(&self, table: Table, key: &str, bytes: Vec<u8>) -> Result<(), Fault> {
        self.part.borrow_mut().insert((table, key.to_owned()), Some(bytes));
        Ok(())
    }

    pub(in crate::store) fn remove(&self, table: Table, key: &str) -> Result<(), Fault> {
        self.part.borrow_mut().insert((table, key.to_owned()), None);
        Ok(())
    }
}

/// `records`, read in one statement: one `= ANY(…)` lookup per table, so
/// that its text depends only on which tables are read (prepared once per
/// connection for each such set, however many records a group reads).
/// Each record is in the answer, `None` where there is none.
pub(super) async fn read_all(
    client: &deadpool_postgres::ClientWrapper,
    records: &[(Table, String)],
) -> Result<Records, tokio_postgres::Error> {
    let mut found: Records = records.iter().map(|record| (record.clone(), None)).collect();
    let mut keys: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (table, key) in records {
        keys.entry(*table as usize).or_default().push(key);
    }
    if keys.is_empty() {
        return Ok(found);
    }
    let sql = keys
        .keys()
        .enumerate()
        .map(|(i, table)| {
            format!("SELECT {table}, key, value::text FROM {} WHERE key = ANY(${})", TABLES[*table].1, i + 1)
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        keys.values().map(|k| k as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
    let statement = client.prepare_cached(&sql).await?;
    for row in client.query(&statement, &params).await? {
        let table = usize::try_from(row.get::<_, i32>(0)).ok().and_then(|t| TABLES.get(t)).map(|(table, _)| *table);
        if let Some(table) = table {
            found.insert((table, row.get(1)), Some(row.get::<_, String>(2).into_bytes()));
        }
    }
    Ok(found)
}

/// The writes of one transaction as one statement: the records of a table
/// upserted together (`INSERT … SELECT FROM unnest(…)`) and removed
/// together (`DELETE … = ANY(…)`), each a data-modifying `WITH` clause, in
/// the tables' order; and its parameters, two arrays (keys, values) per
/// upsert and one (keys) per removal.
pub(super) fn batch(writes: &Records) -> (String, Vec<Vec<String>>) {
    let mut puts: BTreeMap<usize, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut removes: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut sorted: Vec<_> = writes.iter().map(|((table, key), value)| (*table as usize, key, value)).collect();
    sorted.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (table, key, value) in sorted {
        match value {
            Some(value) => {
                let (keys, values) = puts.entry(table).or_default();
                keys.push(key.clone());
                values.push(String::from_utf8_lossy(value).into_owned());
            }
            None => removes.entry(table).or_default().push(key.clone()),
        }
    }
    let (mut clauses, mut params) = (Vec::new(), Vec::new());
    for (table, (keys, values)) in puts {
        let n = params.len();
        clauses.push(format!(
            "INSERT INTO {} (key, value) SELECT k, v::json FROM unnest(${}::text[], ${}::text[]) AS w(k, v) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            TABLES[table].1,
            n + 1,
            n + 2
        ));
        params.extend([keys, values]);
    }
    for (table, keys) in removes {
        clauses.push(format!("DELETE FROM {} WHERE key = ANY(${}::text[])", TABLES[table].1, params.len() + 1));
        params.push(keys);
    }
    let with: Vec<String> = clauses.iter().enumerate().map(|(i, clause)| format!("w{i} AS ({clause})")).collect();
    (format!("WITH {} SELECT 1", with.join(", ")), params)
}

/// Sends `writes` as one statement (see [`batch`]; prepared once per
/// connection) and the commit after it, pipelined, so the writers' turn
/// ends one round trip after the transaction's last read. Should the
/// writes fail, PostgreSQL ends the transaction at that `COMMIT` with a
/// rollback, and their error is the answer.
pub(super) async fn send_and_commit(
    client: &deadpool_postgres::ClientWrapper,
    writes: &Records,
) -> Result<(), tokio_postgres::Error> {
    if writes.is_empty() {
        return client.batch_execute("COMMIT").await;
    }
    let (sql, columns) = batch(writes);
    let statement = client.prepare_cached(&sql).await?;
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        columns.iter().map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
    // Polled in this order, the writes are queued on the connection before
    // the commit.
    let (written, committed) =
        futures_util::future::join(client.execute(&statement, &params), client.batch_execute("COMMIT")).await;
    written?;
    committed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_each_records_last_state_and_groups_by_table() {
        let put = |table, key: &str, value: &str| ((table, key.to_owned()), Some(value.as_bytes().to_vec()));
        let remove = |table, key: &str| ((table, key.to_owned()), None);
        let mut writes = Records::new();
        // In this order, as a transaction's puts and removes record them.
        for (record, value) in [
            put(Table::Devices, "b", "1"),
            put(Table::Invites, "x", "2"),
            put(Table::Devices, "a", "3"),
            remove(Table::Devices, "b"),
            put(Table::Seats, "s", "4"),
            remove(Table::Seats, "s"),
            put(Table::Seats, "s", "5"),
        ] {
            writes.insert(record, value);
        }
        let (sql, params) = batch(&writes);
        assert_eq!(sql.matches("INSERT INTO").count(), 3, "{sql}");
        assert_eq!(sql.matches("DELETE FROM devices").count(), 1, "{sql}");
        let expected: Vec<Vec<String>> = [vec!["x"], vec!["2"], vec!["a"], vec!["3"], vec!["s"], vec!["5"], vec!["b"]]
            .iter()
            .map(|c| c.iter().map(|s| s.to_string()).collect())
            .collect();
        assert_eq!(params, expected);
        assert!(sql.find("invites").unwrap() < sql.find("devices").unwrap(), "tables in their order: {sql}");
    }
}
