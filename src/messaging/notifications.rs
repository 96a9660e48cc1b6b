//! Notifications: validated, stored durably (with a delivery record per
//! recipient device) before they are published, listed per device after a
//! `since` id, replayed to a phone that comes back, acknowledged by the
//! phone's `since` cursor (on disk), and pruned after the retention period.
//! Delivery state: stored (on disk) → published (to a live connection; kept
//! in memory) → acknowledged.

use super::delivery::Delivery;
use super::error::MessagingError;
pub(crate) use super::notify_request::NotifyRequest;
use super::wire::{self, Outbound};
use crate::clock::{Clock, Timestamp};
use crate::devices::{Device, DeviceState};
use crate::store::{Store, Table};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The answer to notify.
#[derive(Debug, Serialize)]
pub(crate) struct Notified {
    /// The notification's id.
    pub id: String,
    /// The devices it was stored for.
    pub delivered_to: Vec<String>,
}

/// Where a notification stands for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DeliveryState {
    /// On disk, not yet published to a live connection.
    Stored,
    /// Published while the phone was connected.
    Published,
    /// The phone said it has it (its `since` cursor passed it).
    Acknowledged,
}

/// A device's delivery record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Delivered {
    state: DeliveryState,
    at: Timestamp,
}

/// A stored notification.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    user_id: String,
    recipients: Vec<String>,
    message: wire::Notification,
}

/// A notification as a phone lists it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Listed {
    /// The message.
    #[serde(flatten)]
    pub message: wire::Notification,
    /// Where it stands for this device.
    pub delivery: DeliveryState,
}

/// A notification as the admin's activity view shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Recent {
    /// The message.
    #[serde(flatten)]
    pub message: wire::Notification,
    /// The user.
    pub user_id: String,
    /// The devices it was stored for.
    pub recipients: Vec<String>,
}

/// Most notifications one listing returns.
pub(crate) const PAGE: usize = 500;

/// A notification id: `n` and 16 hex digits of a store id, so ids sort in
/// the order they were made.
pub(crate) fn id_of(store_id: u64) -> String {
    format!("n{store_id:016x}")
}

fn inbox_key(device: &str, id: &str) -> String {
    format!("{device}/{id}")
}

fn ack_key(device: &str) -> String {
    format!("ack/{device}")
}

/// Notifications `from..=to` all reached one subscribed connection: each
/// was published to it, in order, while it was subscribed (a publish to
/// the device without one ends the run; a replay of older ones leaves it).
#[derive(Clone)]
struct Run {
    connection: u64,
    from: String,
    to: String,
}

impl Run {
    fn covers(&self, connection: Option<u64>, id: &str) -> bool {
        connection == Some(self.connection) && self.from.as_str() <= id && id <= self.to.as_str()
    }
}

/// Whether a notification is sent for the first time (and so also pushed)
/// or replayed to a phone that came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fresh {
    Yes,
    Replayed,
}

/// The notification service (cheap to clone).
#[derive(Clone)]
pub(crate) struct Notifications {
    store: Store,
    delivery: Delivery,
    /// Per device, the newest notification published to a live connection.
    /// Kept in memory: writing it per delivery made the store grow under
    /// sustained load, and after a restart the replay covers it anyway.
    published: Arc<Mutex<HashMap<String, String>>>,
    /// Per device, the unbroken run of notifications published to one
    /// subscribed connection: a replay to that connection leaves them out.
    runs: Arc<Mutex<HashMap<String, Run>>>,
    /// One lock per user: a user's notifications get their ids, are stored
    /// and are published in one order, so a phone that has id N has every
    /// earlier one that was published, and `since` = the newest it has is
    /// safe.
    order: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    clock: Clock,
}

impl Notifications {
    /// A service over `store`.
    pub(crate) fn new(store: Store, delivery: Delivery, clock: Clock) -> Notifications {
        Notifications { store, delivery, published: Arc::default(), runs: Arc::default(), order: Arc::default(), clock }
    }

    /// Stores a notification for `recipients` (on disk when this returns),
    /// then publishes it to each.
    pub(crate) async fn notify(
        &self,
        request: &NotifyRequest,
        recipients: &[Device],
    ) -> Result<Notified, MessagingError> {
        self.send(request.message(self.clock.now())?, recipients).await
    }

    /// Stores `message` (its id filled in here) for `recipients`, all of
    /// one user, then publishes it to each.
    pub(crate) async fn send(
        &self,
        mut message: wire::Notification,
        recipients: &[Device],
    ) -> Result<Notified, MessagingError> {
        let user_id = recipients.first().map(|d| d.user_id.to_string()).unwrap_or_default();
        let lock = self.order_of(&user_id);
        let _in_order = lock.lock().await;
        message.id = id_of(self.store.next_id()?);
        let recipients_ids = recipients.iter().map(|d| d.device_id.to_string()).collect();
        let stored = Stored { user_id, recipients: recipients_ids, message: message.clone() };
        let now = self.clock.now();
        self.store
            .commit(|tx| {
                tx.put::<_, MessagingError>(Table::Notifications, &message.id, &stored)?;
                for d in recipients {
                    let record = Delivered { state: DeliveryState::Stored, at: now };
                    tx.put(Table::Inbox, &inbox_key(d.device_id.as_str(), &message.id), &record)?;
                }
                Ok(())
            })
            .await?;
        let outbound = Outbound::Notification(message.clone());
        for d in recipients {
            self.publish(d, &outbound, &message.id, Fresh::Yes).await;
        }
        Ok(Notified { id: message.id, delivered_to: stored.recipients })
    }

    /// The lock that keeps `user`'s notifications in one order.
    fn order_of(&self, user: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.order.lock().unwrap_or_else(|p| p.into_inner()).entry(user.to_owned()).or_default().clone()
    }

    /// Publishes one notification to one device (the user's order lock
    /// held), keeping its published cursor and run; a fresh one is pushed
    /// too.
    async fn publish(&self, device: &Device, outbound: &Outbound, id: &str, fresh: Fresh) {
        let (user, dev) = (device.user_id.as_str(), device.device_id.as_str());
        let sent = match fresh {
            Fresh::Yes => self.delivery.send(user, dev, outbound).await,
            Fresh::Replayed => self.delivery.send_live(user, dev, outbound).await,
        };
        let Some(connection) = sent else {
            self.runs.lock().unwrap_or_else(|p| p.into_inner()).remove(dev);
            return;
        };
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let cursor = published.entry(dev.to_owned()).or_default();
        if cursor.as_str() < id {
            *cursor = id.to_owned();
        }
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        match runs.get_mut(dev) {
            Some(run) if run.connection == connection => {
                if run.to.as_str() < id {
                    run.to = id.to_owned();
                }
            }
            _ => {
                runs.insert(dev.to_owned(), Run { connection, from: id.to_owned(), to: id.to_owned() });
            }
        }
    }

    /// The device's acknowledged cursor.
    fn acked(&self, device: &str) -> Result<Option<String>, MessagingError> {
        Ok(self.store.get::<String>(Table::Meta, &ack_key(device))?)
    }

    /// The device's notifications after `since` (after its acknowledged
    /// cursor when `None`), oldest first, at most [`PAGE`]. Never anything
    /// from before this pairing of the device id (its inbox floor).
    pub(crate) fn list(&self, paired: &Device, since: Option<&str>) -> Result<Vec<Listed>, MessagingError> {
        let device = paired.device_id.as_str();
        let acked = self.acked(device)?;
        let after = since.map(str::to_owned).or_else(|| acked.clone());
        let after = match (after, paired.inbox_floor.clone()) {
            (Some(after), Some(floor)) => Some(after.max(floor)),
            (after, floor) => after.or(floor),
        };
        let prefix = format!("{device}/");
        let after_key = after.as_deref().map(|id| inbox_key(device, id));
        let records: Vec<(String, Delivered)> =
            self.store.scan_prefix(Table::Inbox, &prefix, after_key.as_deref(), PAGE)?;
        let published = self.published.lock().unwrap_or_else(|p| p.into_inner()).get(device).cloned();
        let mut listed = Vec::with_capacity(records.len());
        for (key, record) in records {
            let id = &key[prefix.len()..];
            let Some(stored) = self.store.get::<Stored>(Table::Notifications, id)? else { continue };
            let delivery = match (&acked, &published) {
                (Some(cursor), _) if id <= cursor.as_str() => DeliveryState::Acknowledged,
                (_, Some(cursor)) if id <= cursor.as_str() => DeliveryState::Published,
                _ => record.state,
            };
            listed.push(Listed { message: stored.message, delivery });
        }
        Ok(listed)
    }

    /// Whether `id` was stored for this pairing of `device`.
    pub(crate) fn holds(&self, device: &Device, id: &str) -> Result<bool, MessagingError> {
        let floor = device.inbox_floor.as_deref().unwrap_or_default();
        Ok(id > floor && self.store.contains(Table::Inbox, &inbox_key(device.device_id.as_str(), id))?)
    }

    /// Whether `device`'s acknowledged cursor is at or past `id`.
    pub(crate) fn acknowledged(&self, device: &str, id: &str) -> bool {
        self.acked(device).ok().flatten().is_some_and(|cursor| id <= cursor.as_str())
    }

    /// One notification, with its user and recipients.
    pub(crate) fn get(&self, id: &str) -> Result<Option<Recent>, MessagingError> {
        let stored: Option<Stored> = self.store.get(Table::Notifications, id)?;
        Ok(stored.map(|s| Recent { message: s.message, user_id: s.user_id, recipients: s.recipients }))
    }

    /// The newest `n` notifications, newest first.
    pub(crate) fn recent(&self, n: usize) -> Result<Vec<Recent>, MessagingError> {
        let stored: Vec<Stored> = self.store.last(Table::Notifications, n)?;
        Ok(stored
            .into_iter()
            .map(|s| Recent { message: s.message, user_id: s.user_id, recipients: s.recipients })
            .collect())
    }

    /// Records that the device has everything up to `id` (never moves back).
    pub(crate) fn acknowledge(&self, device: &str, id: &str) -> Result<(), MessagingError> {
        let key = ack_key(device);
        self.store
            .commit_unflushed(|tx| match tx.get::<String, MessagingError>(Table::Meta, &key)? {
                Some(current) if current.as_str() >= id => Ok(()),
                _ => tx.put(Table::Meta, &key, &id.to_owned()),
            })
            .map_err(MessagingError::from)
    }

    /// Sends the device what it missed: everything after `since` (after its
    /// acknowledged cursor when `None`), except what its subscribed
    /// connection got live while this presence was on its way. How many
    /// were sent.
    pub(crate) async fn replay(&self, device: &Device, since: Option<&str>) -> Result<usize, MessagingError> {
        if device.status != DeviceState::Active {
            return Ok(0);
        }
        if let Some(since) = since {
            self.acknowledge(device.device_id.as_str(), since)?;
        }
        let lock = self.order_of(device.user_id.as_str());
        let _in_order = lock.lock().await;
        let connection = self.delivery.subscribed_connection(device.device_id.as_str()).await;
        let run = self.runs.lock().unwrap_or_else(|p| p.into_inner()).get(device.device_id.as_str()).cloned();
        let mut sent = 0;
        for listed in self.list(device, since)? {
            let id = listed.message.id.clone();
            if run.as_ref().is_some_and(|r| r.covers(connection, &id)) {
                continue;
            }
            self.publish(device, &Outbound::Notification(listed.message), &id, Fresh::Replayed).await;
            sent += 1;
        }
        self.delivery.metrics().replayed(sent);
        Ok(sent)
    }

    /// Removes notifications older than `cutoff` with their delivery
    /// records; how many.
    pub(crate) fn prune(&self, cutoff: Timestamp) -> Result<usize, MessagingError> {
        let oldest: Vec<(String, Stored)> = self.store.scan_prefix(Table::Notifications, "n", None, 1000)?;
        let old: Vec<(String, Stored)> = oldest.into_iter().take_while(|(_, s)| s.message.time < cutoff).collect();
        self.store
            .commit_unflushed(|tx| {
                for (id, stored) in &old {
                    tx.remove::<MessagingError>(Table::Notifications, id)?;
                    for device in &stored.recipients {
                        tx.remove(Table::Inbox, &inbox_key(device, id))?;
                    }
                }
                Ok(())
            })
            .map_err(MessagingError::from)?;
        Ok(old.len())
    }
}
