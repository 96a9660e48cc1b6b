//! Voice and text commands: each command id is handled at most once (a
//! store record), its text is matched to an allow-listed action (offline
//! first, then the optional LLM), and the phone is told what became of it.
//! A risky action first asks the same phone for an approval; a ready one
//! runs in the background and reports `build_status` and `command_result`.

mod record;

use crate::actions::llm::LlmMatcher;
use crate::actions::matcher::{self, Match};
use crate::actions::runner::{self, Outcome};
use crate::actions::{Action, Actions};
use crate::audit::{Actor, AuditLog, Event};
use crate::clock::{Clock, Timestamp};
use crate::devices::{Device, Devices};
use crate::limits::{DeviceBucket, RateLimits};
use crate::messaging::approvals::{ApprovalRequest, Approvals, Planned, Status};
use crate::messaging::delivery::Delivery;
use crate::messaging::error::MessagingError;
use crate::messaging::wire::{self, CommandStatus, Outbound};
use crate::store::{Store, Table, TxAbort};
pub(crate) use record::CommandRecord;
use record::{check, describe, key, result, status_name, Queued};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

/// Commands that may run at once.
const MAX_RUNNING: usize = 4;
/// Commands that may wait for a free slot; more are refused (429).
pub(crate) const MAX_QUEUED: usize = 16;

/// The command service (cheap to clone).
#[derive(Clone)]
pub(crate) struct Commands {
    store: Store,
    delivery: Delivery,
    approvals: Approvals,
    audit: AuditLog,
    actions: Actions,
    llm: Option<LlmMatcher>,
    workdir: PathBuf,
    running: Arc<Semaphore>,
    /// Started runs not yet finished (running or waiting for a slot).
    queued: Arc<AtomicUsize>,
    devices: Devices,
    limits: RateLimits,
    /// Runs happen here, so shutdown waits for them.
    tasks: TaskTracker,
    clock: Clock,
}

/// What the service needs.
pub(crate) struct CommandParts {
    /// The store.
    pub store: Store,
    /// The sender.
    pub delivery: Delivery,
    /// For risky actions.
    pub approvals: Approvals,
    /// The audit log.
    pub audit: AuditLog,
    /// The allow-list.
    pub actions: Actions,
    /// The optional LLM matcher.
    pub llm: Option<LlmMatcher>,
    /// Where actions without a `workdir` run.
    pub workdir: PathBuf,
    /// To check the device again when its run starts.
    pub devices: Devices,
    /// Per-device command budgets.
    pub limits: RateLimits,
    /// Background work the appliance's shutdown waits for.
    pub tasks: TaskTracker,
    /// The appliance's clock.
    pub clock: Clock,
}

impl Commands {
    /// A service from its parts.
    pub(crate) fn new(parts: CommandParts) -> Commands {
        let CommandParts { store, delivery, approvals, audit, actions, llm, workdir, devices, limits, tasks, clock } =
            parts;
        Commands {
            store,
            delivery,
            approvals,
            audit,
            actions,
            llm,
            workdir,
            running: Arc::new(Semaphore::new(MAX_RUNNING)),
            queued: Arc::default(),
            devices,
            limits,
            tasks,
            clock,
        }
    }

    /// Handles a command from `device`; the first answer. A repeated id gets
    /// the stored answer and runs nothing.
    pub(crate) async fn handle(
        &self,
        device: &Device,
        id: &str,
        text: &str,
    ) -> Result<wire::CommandResult, MessagingError> {
        let text = check(id, text)?;
        let k = key(device.device_id.as_str(), id);
        if let Some(existing) = self.store.get::<CommandRecord>(Table::Commands, &k)? {
            if existing.received_at >= device.paired_at {
                return Ok(existing.result);
            }
        }
        self.limits.check_device(DeviceBucket::Commands, device.device_id.as_str())?;
        let waiting = self.queued.load(Ordering::Relaxed);
        if waiting >= MAX_RUNNING + MAX_QUEUED {
            return Err(MessagingError::QueueFull(waiting));
        }
        let (answer, run) = self.decide(device, id, &text).await?;
        let record = CommandRecord {
            id: id.to_owned(),
            device_id: device.device_id.to_string(),
            user_id: device.user_id.to_string(),
            text: text.clone(),
            received_at: self.clock.now(),
            result: answer.clone(),
        };
        let paired_at = device.paired_at;
        let fresh = self
            .store
            .commit(|tx| match tx.get::<CommandRecord, MessagingError>(Table::Commands, &k)? {
                Some(existing) if existing.received_at >= paired_at => Ok(Some(existing.result)),
                _ => tx.put(Table::Commands, &k, &record).map(|()| None),
            })
            .await?;
        if let Some(earlier) = fresh {
            return Ok(earlier);
        }
        let actor = Actor::Device(device.device_id.to_string());
        let target = answer.action.clone().unwrap_or_else(|| "-".into());
        self.audit.record(Event::new(&actor, "command", target, status_name(answer.status))).await;
        self.send(device, Outbound::CommandResult(answer.clone())).await;
        if let Some((action, params)) = run {
            self.spawn_run(device.clone(), id.to_owned(), action, params);
        }
        Ok(answer)
    }

    async fn matched(&self, actions: &[Action], text: &str) -> Match {
        let offline = matcher::match_text(actions, text);
        match (&offline, &self.llm) {
            (Match::Unknown, Some(llm)) => llm.choose(actions, text).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the LLM matcher failed; answering with the offline result");
                Match::Unknown
            }),
            _ => offline,
        }
    }

    /// The first answer, and the action to run now (if any).
    async fn decide(
        &self,
        device: &Device,
        id: &str,
        text: &str,
    ) -> Result<(wire::CommandResult, Option<(Action, BTreeMap<String, String>)>), MessagingError> {
        let actions = self.actions.current();
        let (name, params) = match self.matched(&actions, text).await {
            Match::Unknown => {
                let message = format!("Sorry, I don't know that one. {}", matcher::help(&actions));
                return Ok((result(self.clock.now(), id, CommandStatus::Unknown, message), None));
            }
            Match::NeedsParameter { action, param, values } => {
                let mut answer = result(
                    self.clock.now(),
                    id,
                    CommandStatus::NeedsParameter,
                    format!("Which {param}? Say one of: {}.", values.join(", ")),
                );
                answer.action = Some(action);
                return Ok((answer, None));
            }
            Match::Ready { action, params } => (action, params),
        };
        let Some(action) = actions.iter().find(|a| a.name == name).cloned() else {
            return Ok((result(self.clock.now(), id, CommandStatus::Unknown, matcher::help(&actions)), None));
        };
        let shown = describe(&action, &params);
        if action.confirm {
            let approval = self.ask_approval(device, id, &action, &params, &shown).await?;
            let mut answer = result(
                self.clock.now(),
                id,
                CommandStatus::AwaitingApproval,
                format!("{shown} needs your confirmation: approve it on this phone."),
            );
            (answer.action, answer.params, answer.approval_id) = (Some(name), params, Some(approval.id));
            return Ok((answer, None));
        }
        let mut answer = result(self.clock.now(), id, CommandStatus::Started, format!("Starting {shown}."));
        (answer.action, answer.params) = (Some(name), params.clone());
        Ok((answer, Some((action, params))))
    }

    async fn ask_approval(
        &self,
        device: &Device,
        id: &str,
        action: &Action,
        params: &BTreeMap<String, String>,
        shown: &str,
    ) -> Result<crate::messaging::approvals::Approval, MessagingError> {
        let request = ApprovalRequest {
            user_id: device.user_id.to_string(),
            title: format!("Run {shown}?"),
            detail: action.description.clone(),
            timeout_s: Some(300),
            approvers: vec![device.device_id.to_string()],
            webhook_url: None,
        };
        let planned = Planned { command_id: id.to_owned(), action: action.name.clone(), params: params.clone() };
        let actor = Actor::Device(device.device_id.to_string());
        self.approvals.create(&actor, &request, std::slice::from_ref(device), Some(planned)).await
    }

    /// Tells the phone a command was refused before it was handled (over
    /// its budget, or the queue is full); nothing is stored.
    pub(crate) async fn refuse(&self, device: &Device, id: &str, why: &MessagingError) {
        let answer = result(self.clock.now(), id, CommandStatus::Rejected, format!("Not run: {why}."));
        self.send(device, Outbound::CommandResult(answer)).await;
    }

    /// After an approval with a planned action was decided: run it, or say
    /// it was refused.
    pub(crate) async fn on_decision(&self, device: &Device, planned: &Planned, status: Status) {
        let actions = self.actions.current();
        let action = actions.iter().find(|a| a.name == planned.action).cloned();
        match (status, action) {
            (Status::Approved, Some(action)) => {
                let shown = describe(&action, &planned.params);
                let mut answer = result(
                    self.clock.now(),
                    &planned.command_id,
                    CommandStatus::Started,
                    format!("Approved: starting {shown}."),
                );
                (answer.action, answer.params) = (Some(action.name.clone()), planned.params.clone());
                self.update(device, &planned.command_id, answer).await;
                self.spawn_run(device.clone(), planned.command_id.clone(), action, planned.params.clone());
            }
            (Status::Approved, None) => {
                let answer = result(
                    self.clock.now(),
                    &planned.command_id,
                    CommandStatus::Failed,
                    "That action is no longer allowed.".into(),
                );
                self.update(device, &planned.command_id, answer).await;
            }
            _ => {
                let message = format!("Not run: the approval was {}.", status.as_str());
                let answer = result(self.clock.now(), &planned.command_id, CommandStatus::Rejected, message);
                self.update(device, &planned.command_id, answer).await;
            }
        }
    }

    fn spawn_run(&self, device: Device, id: String, action: Action, params: BTreeMap<String, String>) {
        let this = self.clone();
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.tasks.spawn(async move {
            let _counted = Queued(this.queued.clone());
            let Ok(_permit) = this.running.clone().acquire_owned().await else { return };
            if !this.still_paired(&device) {
                let answer =
                    result(this.clock.now(), &id, CommandStatus::Rejected, "Not run: this phone was revoked or suspended.".into());
                this.update(&device, &id, answer).await;
                tracing::info!(device = %device.device_id, "a queued command was dropped: its device is no longer active");
                return;
            }
            this.build_status(&device, &action, &params, CommandStatus::Started, None).await;
            let finished = runner::run(&action, &params, &this.workdir).await;
            let (status, exit_code, message) = match &finished.outcome {
                Outcome::Exited(0) => (CommandStatus::Succeeded, Some(0), format!("{} succeeded.", action.name)),
                Outcome::Exited(code) => {
                    (CommandStatus::Failed, Some(*code), format!("{} failed (exit code {code}).", action.name))
                }
                Outcome::Killed => (CommandStatus::Failed, None, format!("{} was killed.", action.name)),
                Outcome::TimedOut => (
                    CommandStatus::TimedOut,
                    None,
                    format!("{} ran past {} s and was stopped.", action.name, action.timeout_s),
                ),
                Outcome::NotStarted(why) => {
                    (CommandStatus::Failed, None, format!("{} could not start: {why}.", action.name))
                }
            };
            let mut answer = result(this.clock.now(), &id, status, message);
            (answer.action, answer.params, answer.exit_code) = (Some(action.name.clone()), params.clone(), exit_code);
            answer.output_tail = Some(finished.output_tail);
            this.build_status(&device, &action, &params, status, exit_code).await;
            this.update(&device, &id, answer).await;
            let actor = Actor::Device(device.device_id.to_string());
            this.audit.record(Event::new(&actor, "command.run", &action.name, status_name(status))).await;
        });
    }

    /// Whether the device that asked is still the same active pairing.
    fn still_paired(&self, device: &Device) -> bool {
        self.devices
            .get(device.device_id.as_str())
            .is_ok_and(|now| now.status == crate::devices::DeviceState::Active && now.paired_at == device.paired_at)
    }

    async fn build_status(
        &self,
        device: &Device,
        action: &Action,
        params: &BTreeMap<String, String>,
        state: CommandStatus,
        exit_code: Option<i32>,
    ) {
        let status = wire::BuildStatus {
            id: uuid::Uuid::new_v4().simple().to_string(),
            time: self.clock.now(),
            action: action.name.clone(),
            params: params.clone(),
            state,
            exit_code,
        };
        self.send(device, Outbound::BuildStatus(status)).await;
    }

    /// Stores the command's latest answer and sends it.
    async fn update(&self, device: &Device, id: &str, answer: wire::CommandResult) {
        let k = key(device.device_id.as_str(), id);
        let stored = self
            .store
            .commit(|tx| {
                let mut record: CommandRecord = tx
                    .get(Table::Commands, &k)?
                    .ok_or(TxAbort::Domain(MessagingError::invalid("id", "unknown command")))?;
                record.result = answer.clone();
                tx.put(Table::Commands, &k, &record)
            })
            .await;
        if let Err(e) = stored {
            tracing::error!(error = %MessagingError::from(e), "could not store a command's result");
        }
        self.send(device, Outbound::CommandResult(answer)).await;
    }

    async fn send(&self, device: &Device, message: Outbound) {
        self.delivery.send(device.user_id.as_str(), device.device_id.as_str(), &message).await;
    }

    /// Removes commands received before `cutoff`; how many.
    pub(crate) fn prune(&self, cutoff: Timestamp) -> Result<usize, MessagingError> {
        let commands: Vec<(String, CommandRecord)> = self.store.scan_keyed(Table::Commands)?;
        let old: Vec<&String> = commands.iter().filter(|(_, c)| c.received_at < cutoff).map(|(k, _)| k).collect();
        self.store
            .commit_unflushed(|tx| old.iter().try_for_each(|k| tx.remove::<MessagingError>(Table::Commands, k)))
            .map_err(MessagingError::from)?;
        Ok(old.len())
    }

    /// The most recent commands, newest first.
    pub(crate) fn recent(&self, limit: usize) -> Result<Vec<CommandRecord>, MessagingError> {
        let mut all: Vec<CommandRecord> = self.store.scan(Table::Commands)?;
        all.sort_by_key(|c| std::cmp::Reverse(c.received_at));
        all.truncate(limit);
        Ok(all)
    }
}
