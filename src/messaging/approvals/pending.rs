//! Pending approvals by user: one store record `{user}/{approval}` while an
//! approval is pending, written in the same transaction as the approval,
//! so a phone coming online (which is sent what waits for it) and the
//! expiry sweep read the pending ones, not every approval kept. Rebuilt at
//! start-up.

use super::record::{Approval, Status};
use crate::store::{Store, StoreError, Table, Tx, TxAbort};
use std::convert::Infallible;

fn key(approval: &Approval) -> String {
    format!("{}/{}", approval.user_id, approval.id)
}

/// Files `approval` while it is pending, and unfiles it once decided.
pub(super) fn file<E>(tx: &Tx<'_>, approval: &Approval) -> Result<(), TxAbort<E>> {
    match approval.status {
        Status::Pending => tx.put(Table::PendingApprovals, &key(approval), &()),
        _ => tx.remove(Table::PendingApprovals, &key(approval)),
    }
}

/// The ids of `user`'s pending approvals.
pub(super) fn of(store: &Store, user: &str) -> Result<Vec<String>, StoreError> {
    let prefix = format!("{user}/");
    let filed: Vec<(String, ())> = store.scan_prefix(Table::PendingApprovals, &prefix, None, usize::MAX)?;
    Ok(filed.into_iter().map(|(k, ())| k[prefix.len()..].to_owned()).collect())
}

/// The ids of every pending approval.
pub(super) fn all(store: &Store) -> Result<Vec<String>, StoreError> {
    let filed: Vec<(String, ())> = store.scan_keyed(Table::PendingApprovals)?;
    Ok(filed.into_iter().filter_map(|(k, ())| k.split_once('/').map(|(_, id)| id.to_owned())).collect())
}

/// Files every pending approval afresh (at start-up).
pub(crate) async fn rebuild(store: &Store) -> Result<(), StoreError> {
    let stale: Vec<(String, ())> = store.scan_keyed(Table::PendingApprovals)?;
    let approvals: Vec<Approval> = store.scan(Table::Approvals)?;
    let outcome = store
        .commit(|tx| {
            stale.iter().try_for_each(|(k, ())| tx.remove::<Infallible>(Table::PendingApprovals, k))?;
            approvals.iter().try_for_each(|a| file::<Infallible>(tx, a))
        })
        .await;
    outcome.map_err(StoreError::from)
}
