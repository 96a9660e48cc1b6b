//! How the messaging service is put together: delivery (MQTT, event
//! streams, Web Push), notifications, approvals, commands, receipts and
//! escalation by SMS, from the parts `App::build` made.

use crate::actions::llm::LlmMatcher;
use crate::actions::Actions;
use crate::audit::AuditLog;
use crate::config::Config;
use crate::devices::Devices;
use crate::limits::RateLimits;
use crate::messaging::approvals::Approvals;
use crate::messaging::commands::{CommandParts, Commands};
use crate::messaging::delivery::Delivery;
use crate::messaging::escalation::Escalation;
use crate::messaging::notifications::Notifications;
use crate::messaging::receipts::Receipts;
use crate::messaging::Messaging;
use crate::metrics::Metrics;
use crate::mqtt::broker::Broker;
use crate::mqtt::gateway::Gateway;
use crate::push::Push;
use crate::sms::templates::Templates;
use crate::store::datadir::DataDir;
use crate::store::Store;
use anyhow::Context as _;
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// The messaging service and its parts.
#[allow(clippy::too_many_arguments)]
pub(super) fn messaging(
    config: &Config,
    dir: &DataDir,
    store: &Store,
    audit: &AuditLog,
    devices: &Devices,
    broker: &Broker,
    gateway: &Gateway,
    metrics: &Metrics,
    limits: &RateLimits,
    tasks: &TaskTracker,
    reach: Reach,
) -> anyhow::Result<Messaging> {
    let Reach { push, receipts, sms, templates, base_url, cluster } = reach;
    let clock = devices.clock();
    let delivery = Delivery::new(crate::messaging::delivery::Parts {
        link: broker.link.clone(),
        gateway: gateway.clone(),
        push,
        retention: config.notification_retention,
        metrics: metrics.clone(),
        tasks: tasks.clone(),
        clock: clock.clone(),
        receipts: receipts.clone(),
        cluster,
    });
    let notifications = Notifications::new(store.clone(), delivery.clone(), clock.clone());
    let approvals = Approvals::new(store.clone(), delivery.clone(), audit.clone(), tasks.clone(), clock.clone());
    let actions = Actions::load(&dir.file("actions.toml")).context("actions.toml")?;
    let llm = config.llm.clone().map(LlmMatcher::new).transpose().context("LLM matcher")?;
    if let Some(llm) = &config.llm {
        tracing::info!(model = %llm.model, "voice commands the offline matcher misses go to the LLM matcher");
    }
    let commands = Commands::new(CommandParts {
        store: store.clone(),
        delivery: delivery.clone(),
        approvals: approvals.clone(),
        audit: audit.clone(),
        actions,
        llm,
        workdir: dir.root().to_owned(),
        devices: devices.clone(),
        limits: limits.clone(),
        tasks: tasks.clone(),
        clock: clock.clone(),
    });
    let escalation = Escalation::new(crate::messaging::escalation::Parts {
        config: config.escalation,
        store: store.clone(),
        approvals: approvals.clone(),
        notifications: notifications.clone(),
        receipts: receipts.clone(),
        devices: devices.clone(),
        sms,
        templates,
        audit: audit.clone(),
        metrics: metrics.clone(),
        clock: clock.clone(),
        base_url,
        cluster: delivery.cluster().clone(),
    });
    let devices = devices.clone();
    Ok(Messaging { notifications, approvals, commands, delivery, receipts, escalation, devices, clock })
}

/// How messages reach the person besides the broker: Web Push, receipts,
/// and escalation by SMS.
pub(super) struct Reach {
    pub(super) push: Push,
    pub(super) receipts: Receipts,
    pub(super) sms: Arc<dyn crate::sms::Sms>,
    pub(super) templates: Arc<Templates>,
    pub(super) base_url: String,
    pub(super) cluster: crate::cluster::Cluster,
}

/// Web Push: the VAPID key and the sender (push services are told the
/// base URL unless the operator gave a contact).
pub(super) fn start_push(config: &Config, base_url: &str, parts: crate::push::Parts) -> anyhow::Result<Push> {
    let mut push = config.push.clone();
    if push.contact.is_empty() {
        push.contact = base_url.to_owned();
    }
    Push::start(&push, parts).context("Web Push")
}
