//! How a test's appliance runs. Inside the test process (`App::build_with`
//! on a runtime and thread of its own, as `topdog serve` would run it) by
//! default: it starts and stops quicker, and its console SMS come back as
//! lines. As a child process (the real binary) when a test sends it
//! signals, kills it, reads its log or gives it environment variables.

use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use topdog::app::StartInfo;
use topdog::sms::ConsoleOut;

/// How long a stopping appliance may take to finish its requests and work.
const STOP_WITHIN: Duration = Duration::from_secs(30);

/// How long a dropped in-process appliance is waited for before its thread
/// is left to finish on its own.
const DROP_WITHIN: Duration = Duration::from_secs(2);

const NEEDS_PROCESS: &str = "this test needs its appliance as a process: Options::process()";

/// A running appliance.
pub enum Running {
    Process(Child),
    InProcess(Embedded),
}

/// An appliance inside the test process.
pub struct Embedded {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Whether it stopped cleanly, sent once its thread is done.
    done: mpsc::Receiver<bool>,
}

/// Builds the appliance `topdog serve ARGS…` would run, on a thread of its
/// own, and waits until it listens; console SMS lines go to `lines`.
pub async fn embed(args: Vec<String>, lines: Arc<dyn Fn(&str) + Send + Sync>) -> (Embedded, StartInfo) {
    let (ready_tx, ready) = tokio::sync::oneshot::channel::<Result<StartInfo, String>>();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done) = mpsc::channel();
    std::thread::Builder::new()
        .name("appliance".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
            let runtime = runtime.expect("a runtime for the appliance");
            let clean = runtime.block_on(async move {
                let built = match topdog::cli::serve_config(args) {
                    Ok(config) => topdog::App::build_with(config, ConsoleOut::Lines(lines)).await,
                    Err(e) => Err(e),
                };
                let app = match built {
                    Ok(app) => app,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{e:#}")));
                        return false;
                    }
                };
                let _ = ready_tx.send(Ok(app.start_info().clone()));
                app.run_until(async {
                    let _ = stopped.await;
                })
                .await
                .is_ok()
            });
            runtime.shutdown_timeout(Duration::from_secs(5));
            let _ = done_tx.send(clean);
        })
        .expect("a thread for the appliance");
    let info = ready.await.expect("the appliance thread").unwrap_or_else(|e| panic!("topdog did not start: {e}"));
    (Embedded { stop: Some(stop), done }, info)
}

impl Running {
    /// Stops the appliance (SIGTERM to a process) and waits; its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        match self {
            Running::Process(child) => {
                signal(child, "TERM");
                child.wait().expect("wait")
            }
            Running::InProcess(embedded) => {
                let clean = embedded.stop_within(STOP_WITHIN).expect("the appliance did not stop within 30 s");
                ExitStatus::from_raw(if clean { 0 } else { 1 << 8 })
            }
        }
    }

    /// Makes sure the appliance has ended (a process is killed), so that
    /// another can start on its data directory.
    pub fn end(&mut self) {
        match self {
            Running::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::InProcess(embedded) => {
                embedded.stop_within(STOP_WITHIN).expect("the appliance did not stop within 30 s");
            }
        }
    }

    /// The child process; a test that needs one asks for `Options::process`.
    pub fn child(&mut self) -> &mut Child {
        match self {
            Running::Process(child) => child,
            Running::InProcess(_) => panic!("{NEEDS_PROCESS}"),
        }
    }

    /// The child process's id.
    pub fn pid(&self) -> u32 {
        match self {
            Running::Process(child) => child.id(),
            Running::InProcess(_) => panic!("{NEEDS_PROCESS}"),
        }
    }
}

impl Embedded {
    /// Asks the appliance to stop and waits up to `within`; whether it
    /// stopped cleanly (`None`: still stopping).
    fn stop_within(&mut self, within: Duration) -> Option<bool> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.done.recv_timeout(within) {
            Ok(clean) => Some(clean),
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(false),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        match self {
            Running::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::InProcess(embedded) => {
                let _ = embedded.stop_within(DROP_WITHIN);
            }
        }
    }
}

/// Sends `sig` to `child` with kill(1).
pub fn signal(child: &Child, sig: &str) {
    let status =
        std::process::Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().expect("kill");
    assert!(status.success(), "kill -{sig} failed");
}
