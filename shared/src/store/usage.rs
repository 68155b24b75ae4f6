//! The counters' port: the audit stream applied to the counters
//! ([`crate::usage`]) and the daily counts read back.

use super::StoreError;
use crate::clock::Timestamp;
use crate::ids::TenantId;
use crate::usage::{DailyCount, Day, UsageBatch};
use async_trait::async_trait;

/// The usage counters.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds one delivery of the audit stream to the counters. Exact: a
    /// batch delivered again adds only what did not land the first time.
    /// The memory store counts as it records and is given no batches by the
    /// development server; it applies them the same way for the contract.
    async fn apply_usage(&self, batch: &UsageBatch, now: Timestamp) -> Result<(), StoreError>;

    /// The tenant's reads per key and per token on each day of `from..=to`
    /// that has any, deleted keys and purged tokens included.
    async fn daily_usage(&self, tenant: &TenantId, from: Day, to: Day) -> Result<Vec<DailyCount>, StoreError>;
}
