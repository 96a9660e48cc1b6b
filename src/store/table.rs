//! The kinds of record the store keeps, each a sled tree (or a PostgreSQL
//! table) of its own.

/// The kinds of record the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// Invites and QR tokens, keyed by the SHA-256 of the code.
    Invites,
    /// Paired devices, keyed by device id.
    Devices,
    /// Revoked token ids, with their expiry.
    RevokedTokens,
    /// Appliance-wide settings and markers.
    Meta,
    /// Per-user counts of devices holding a seat.
    Seats,
    /// Notifications, keyed by their (time-ordered) id.
    Notifications,
    /// Per-device delivery state of notifications, keyed `{device}/{id}`.
    Inbox,
    /// Approval requests, keyed by id.
    Approvals,
    /// Commands phones sent, keyed `{device}/{message id}`.
    Commands,
    /// Devices by user, keyed `{user}/{device}` (an index).
    UserDevices,
    /// Web Push subscriptions, keyed `{device}/{id}`.
    PushSubscriptions,
    /// When a device first showed an item, keyed `{item}/{device}`.
    Receipts,
    /// Escalation texts sent, by item id (and per user and hour).
    Escalations,
    /// The number each device was paired with, by device id.
    DeviceNumbers,
    /// Scoped API tokens, by name (never the token: its hash).
    ApiTokens,
    /// API token names by the token's SHA-256 (an index).
    ApiTokenHashes,
    /// Webhook deliveries seen, keyed `{hook}/{delivery id}` (replays).
    HookDeliveries,
    /// Pending approvals by user, keyed `{user}/{approval}` (an index).
    PendingApprovals,
    /// People who signed in to the console, by user id (their role).
    People,
    /// The nodes serving this appliance, by node id (their heartbeat).
    Nodes,
    /// Console sessions, by the SHA-256 of their id (only when several
    /// nodes share the store; in memory otherwise).
    Sessions,
    /// The audit log's entries by sequence number (only when several nodes
    /// share the store; a file in the data directory otherwise).
    Audit,
}

const TABLE_COUNT: usize = 22;

pub(super) const TABLES: [(Table, &str); TABLE_COUNT] = [
    (Table::Invites, "invites"),
    (Table::Devices, "devices"),
    (Table::RevokedTokens, "revoked_tokens"),
    (Table::Meta, "meta"),
    (Table::Seats, "seats"),
    (Table::Notifications, "notifications"),
    (Table::Inbox, "inbox"),
    (Table::Approvals, "approvals"),
    (Table::Commands, "commands"),
    (Table::UserDevices, "user_devices"),
    (Table::PushSubscriptions, "push_subscriptions"),
    (Table::Receipts, "receipts"),
    (Table::Escalations, "escalations"),
    (Table::DeviceNumbers, "device_numbers"),
    (Table::ApiTokens, "api_tokens"),
    (Table::ApiTokenHashes, "api_token_hashes"),
    (Table::HookDeliveries, "hook_deliveries"),
    (Table::PendingApprovals, "pending_approvals"),
    (Table::People, "people"),
    (Table::Nodes, "nodes"),
    (Table::Sessions, "sessions"),
    (Table::Audit, "audit"),
];
