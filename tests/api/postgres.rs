//! PostgreSQL for the tests: the test command starts a throwaway server
//! (`tests/support/postgres.sh`) and names it in `TOPDOG_TEST_DATABASE_URL`;
//! each appliance gets a database of its own on it. With
//! `TOPDOG_TEST_BACKEND=postgres`, every appliance the helpers start keeps
//! its records there instead of in sled (the test command runs the API and
//! messaging tests so, besides on sled). A test that must restart
//! PostgreSQL starts a private server of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether the helpers put every appliance on PostgreSQL.
pub fn is_backend() -> bool {
    std::env::var("TOPDOG_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The shared test server's URL.
pub fn server() -> String {
    std::env::var("TOPDOG_TEST_DATABASE_URL")
        .expect("TOPDOG_TEST_DATABASE_URL: the test command (tests/run.sh) starts PostgreSQL and sets it")
}

/// A new, empty database on the server at `url`; its URL.
pub async fn fresh_database_on(url: &str) -> String {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to PostgreSQL");
    tokio::spawn(connection);
    let name = format!("td_{:016x}", rand::random::<u64>());
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create a database");
    let mut parsed = url::Url::parse(url).expect("database URL");
    parsed.set_path(&name);
    parsed.to_string()
}

/// A new, empty database on the shared test server.
pub async fn fresh_database() -> String {
    fresh_database_on(&server()).await
}

/// Runs `sql` on `url`, the rows' first columns as text.
pub async fn query(url: &str, sql: &str) -> Vec<String> {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to PostgreSQL");
    tokio::spawn(connection);
    let rows = client.simple_query(sql).await.expect("query");
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// [`query`] from synchronous code (its own thread and runtime).
pub fn query_blocking(url: &str, sql: &str) -> Vec<String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(query(&url, &sql))
    })
    .join()
    .expect("query thread")
}

/// A private PostgreSQL server (stopped when dropped).
pub struct Private {
    dir: tempfile::TempDir,
    /// Its URL (the `postgres` database).
    pub url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/postgres.sh")
}

fn run(args: &[&str], dir: &Path) -> String {
    let out = Command::new(script()).args(args).arg(dir.join("pg")).output().expect("tests/support/postgres.sh");
    assert!(out.status.success(), "postgres.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Private {
    /// Starts one.
    pub fn start() -> Private {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = run(&["start"], dir.path());
        Private { dir, url }
    }

    /// Restarts it (fast shutdown: every session is cut).
    pub fn restart(&self) {
        run(&["restart"], self.dir.path());
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(self.dir.path().join("pg")).output();
    }
}

#[cfg_attr(not(feature = "system-tests"), ignore = "needs PostgreSQL: the test command (tests/run.sh) starts it")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_reads_its_own_writes_and_they_land_in_order() {
    use topdog::store::{Connection, Store, Table, TxAbort};
    let tls = topdog::pki::tls::client(None).expect("TLS");
    let store = Store::connect(&Connection { url: fresh_database().await, tls }).await.expect("connect");
    store.insert(Table::Meta, "gone", &1).await.unwrap();
    let seen = store
        .commit::<_, std::convert::Infallible>(|tx| {
            tx.put(Table::Meta, "n", &1)?;
            let first: Option<i64> = tx.get(Table::Meta, "n")?;
            tx.put(Table::Meta, "n", &(first.unwrap_or_default() + 1))?;
            tx.remove(Table::Meta, "gone")?;
            Ok((first, tx.get::<i64, _>(Table::Meta, "gone")?))
        })
        .await
        .unwrap();
    assert_eq!(seen, (Some(1), None), "writes not yet sent are seen by the transaction's own reads");
    assert_eq!(store.get::<i64>(Table::Meta, "n").unwrap(), Some(2), "the later write wins");
    assert!(!store.contains(Table::Meta, "gone").unwrap());
    let refused = store
        .commit(|tx| {
            tx.put(Table::Meta, "n", &9)?;
            Err::<(), _>(TxAbort::Domain("refused"))
        })
        .await;
    assert!(refused.is_err());
    assert_eq!(store.get::<i64>(Table::Meta, "n").unwrap(), Some(2), "a refused transaction writes nothing");
}

#[cfg_attr(not(feature = "system-tests"), ignore = "needs PostgreSQL: the test command (tests/run.sh) starts it")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_may_not_write_wal_messages_still_commits() {
    use topdog::store::{Connection, Store, Table};
    let url = fresh_database().await;
    let role = format!("td_plain_{:08x}", rand::random::<u32>());
    query(
        &url,
        &format!(
            "REVOKE EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) FROM PUBLIC; \
             REVOKE EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, bytea) FROM PUBLIC; \
             CREATE ROLE {role} LOGIN; GRANT ALL ON SCHEMA public TO {role}"
        ),
    )
    .await;
    let mut as_role = url::Url::parse(&url).unwrap();
    as_role.set_username(&role).unwrap();
    let tls = topdog::pki::tls::client(None).expect("TLS");
    let store = Store::connect(&Connection { url: as_role.to_string(), tls }).await.expect("connect as a plain role");
    store.insert(Table::Meta, "a", &1).await.expect("an insert commits");
    store
        .commit::<_, std::convert::Infallible>(|tx| tx.put(Table::Meta, "b", &2))
        .await
        .expect("a transaction commits");
    assert_eq!(
        (store.get::<i64>(Table::Meta, "a").unwrap(), store.get::<i64>(Table::Meta, "b").unwrap()),
        (Some(1), Some(2))
    );
}

#[cfg_attr(not(feature = "system-tests"), ignore = "needs PostgreSQL: the test command (tests/run.sh) starts it")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_panics_gives_its_turn_back_and_its_connection_never_comes_back_open() {
    use topdog::store::{Connection, Store, Table};
    let url = fresh_database().await;
    let tls = topdog::pki::tls::client(None).expect("TLS");
    let store = Store::connect(&Connection { url: url.clone(), tls }).await.expect("connect");
    let panicking = store.clone();
    let crashed = tokio::spawn(async move {
        panicking
            .commit::<(), std::convert::Infallible>(|tx| {
                let _: Option<i64> = tx.get(Table::Meta, "n")?;
                panic!("a bug inside a transaction, its turn taken");
            })
            .await
    })
    .await;
    assert!(crashed.is_err_and(|e| e.is_panic()));
    let database = url.rsplit('/').next().unwrap_or_default().to_owned();
    let held = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}' AND state LIKE 'idle in transaction%' \
         UNION ALL SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = '{database}')"
    );
    crate::helpers::eventually(|| async {
        let counts = query(&url, &held).await;
        if counts == ["0", "0"] {
            Ok(())
        } else {
            Err(format!("connections idle in a transaction, turns held: {counts:?}"))
        }
    })
    .await;
    let written = store.commit::<_, std::convert::Infallible>(|tx| tx.put(Table::Meta, "n", &1)).await;
    assert!(written.is_ok(), "the next writer gets its turn");
    assert_eq!(store.get::<i64>(Table::Meta, "n").unwrap(), Some(1));
}

#[cfg_attr(not(feature = "system-tests"), ignore = "needs PostgreSQL: the test command (tests/run.sh) starts it")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_transactions_run_as_if_one_at_a_time_and_one_that_refuses_or_panics_leaves_only_itself_out() {
    use topdog::store::{Connection, Store, Table, TxAbort};
    let tls = topdog::pki::tls::client(None).expect("TLS");
    let store = Store::connect(&Connection { url: fresh_database().await, tls }).await.expect("connect");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let store = store.clone();
        tasks.spawn(async move {
            let counted = store.commit_grouped(vec![(Table::Meta, "n".to_owned())], move |tx| {
                let n: u32 = tx.get(Table::Meta, "n")?.unwrap_or(0);
                tx.put(Table::Meta, "n", &(n + 1))?;
                tx.put(Table::Meta, &format!("k{i}"), &i)?;
                match i {
                    7 => panic!("a bug inside a grouped transaction"),
                    i if i % 10 == 0 => Err(TxAbort::Domain("refused")),
                    _ => Ok(n),
                }
            });
            (i, counted.await)
        });
    }
    let (mut seen, mut panicked) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((i, Ok(n))) => seen.push((i, n)),
            Ok((i, Err(_))) => assert_eq!(i % 10, 0, "only the refusing ones are refused"),
            Err(e) => {
                assert!(e.is_panic());
                panicked += 1;
            }
        }
    }
    assert_eq!((seen.len(), panicked), (179, 1));
    let mut counts: Vec<u32> = seen.iter().map(|(_, n)| *n).collect();
    counts.sort_unstable();
    assert_eq!(counts, (0..179).collect::<Vec<_>>(), "each saw the count the ones before it left");
    assert_eq!(store.get::<u32>(Table::Meta, "n").unwrap(), Some(179));
    for i in [0, 7, 10, 190] {
        assert_eq!(store.get::<u32>(Table::Meta, &format!("k{i}")).unwrap(), None, "k{i} was set aside");
    }
    for (i, _) in seen {
        assert_eq!(store.get::<u32>(Table::Meta, &format!("k{i}")).unwrap(), Some(i));
    }
}
