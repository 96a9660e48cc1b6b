//! Runs an allow-listed action: its argv directly (no shell), in its working
//! directory, with a clean environment (no appliance secrets), stdin closed,
//! and a timeout. Each run is its own process group, and the whole group is
//! killed when the run ends (its timeout, or its main process exiting), so
//! nothing an action started in the background outlives it. Keeps the end
//! of the combined output for the phone.

use super::Action;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How much of the output's end is kept.
pub(crate) const TAIL_BYTES: usize = 2048;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The process exited with this code.
    Exited(i32),
    /// It was killed by a signal.
    Killed,
    /// It ran past its timeout and was killed.
    TimedOut,
    /// It could not be started.
    NotStarted(String),
}

/// A finished run.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    /// How it ended.
    pub outcome: Outcome,
    /// The end of stdout and stderr, interleaved as read.
    pub output_tail: String,
}

async fn collect<R: AsyncRead + Unpin>(mut reader: R, tail: std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
        tail.extend_from_slice(&buf[..n]);
        let excess = tail.len().saturating_sub(TAIL_BYTES);
        tail.drain(..excess);
    }
}

fn command(action: &Action, params: &BTreeMap<String, String>, default_dir: &Path) -> Command {
    let argv = action.argv_with(params);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(action.workdir.as_deref().unwrap_or(default_dir))
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .env("TOPDOG_ACTION", &action.name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (name, value) in params {
        cmd.env(format!("TOPDOG_PARAM_{}", name.to_uppercase().replace(['-', '.'], "_")), value);
    }
    cmd
}

/// Kills every process left in the run's process group (its id is the
/// leader's pid).
fn kill_group(leader: Option<u32>) {
    let pid = leader.and_then(|id| i32::try_from(id).ok()).and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        // ESRCH (nothing left) is the usual answer.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Runs `action` with `params` (already checked against its allowed values).
pub(crate) async fn run(action: &Action, params: &BTreeMap<String, String>, default_dir: &Path) -> Finished {
    let mut child = match command(action, params, default_dir).spawn() {
        Ok(child) => child,
        Err(e) => return Finished { outcome: Outcome::NotStarted(e.to_string()), output_tail: String::new() },
    };
    let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let readers = [
        child.stdout.take().map(|r| tokio::spawn(collect(r, tail.clone()))),
        child.stderr.take().map(|r| tokio::spawn(collect(r, tail.clone()))),
    ];
    let group = child.id();
    let outcome = match tokio::time::timeout(action.timeout(), child.wait()).await {
        Ok(Ok(status)) => status.code().map_or(Outcome::Killed, Outcome::Exited),
        Ok(Err(e)) => Outcome::NotStarted(e.to_string()),
        Err(_) => {
            kill_group(group);
            let _ = child.kill().await;
            Outcome::TimedOut
        }
    };
    kill_group(group);
    for reader in readers.into_iter().flatten() {
        let abort = reader.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(1), reader).await.is_err() {
            abort.abort();
        }
    }
    let bytes = tail.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Finished { outcome, output_tail: String::from_utf8_lossy(&bytes).into_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(argv: &[&str], timeout_s: u64) -> Action {
        Action {
            name: "t".into(),
            description: String::new(),
            phrases: vec!["t".into()],
            argv: argv.iter().map(|s| s.to_string()).collect(),
            workdir: None,
            timeout_s,
            confirm: false,
            params: vec![],
        }
    }

    #[tokio::test]
    async fn runs_without_a_shell_and_keeps_the_output_tail() {
        let dir = tempfile::tempdir().unwrap();
        let params = BTreeMap::from([("x".to_owned(), "1".to_owned())]);
        let done =
            run(&action(&["/bin/sh", "-c", "echo $TOPDOG_PARAM_X; echo err >&2; exit 3"], 10), &params, dir.path())
                .await;
        assert_eq!(done.outcome, Outcome::Exited(3));
        assert!(done.output_tail.contains('1') && done.output_tail.contains("err"), "{}", done.output_tail);
        let literal = run(&action(&["/bin/echo", "; rm -rf / $(reboot)"], 10), &params, dir.path()).await;
        assert_eq!(literal.output_tail, "; rm -rf / $(reboot)\n");
    }

    #[tokio::test]
    async fn timeouts_kill_and_missing_programs_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let slow = run(&action(&["/bin/sleep", "30"], 1), &BTreeMap::new(), dir.path()).await;
        assert_eq!(slow.outcome, Outcome::TimedOut);
        let missing = run(&action(&["/nonexistent/program"], 1), &BTreeMap::new(), dir.path()).await;
        assert!(matches!(missing.outcome, Outcome::NotStarted(_)));
    }

    /// The processes whose command line contains `marker`.
    fn running_with(marker: &str) -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(marker))
            .count()
    }

    #[tokio::test]
    async fn a_timed_out_action_takes_its_whole_process_group_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!("999.{}", std::process::id());
        let script = format!("sleep {marker} & sleep {marker}");
        let started = std::time::Instant::now();
        let slow = run(&action(&["/bin/sh", "-c", &script], 1), &BTreeMap::new(), dir.path()).await;
        assert_eq!(slow.outcome, Outcome::TimedOut);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "the output readers were stopped");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while running_with(&marker) > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(running_with(&marker), 0, "both sleeps are gone");
    }
}
