//! Limits: a token's requests per minute and a tenant's monthly quota of
//! value reads, each an atomic conditional counter.

use super::StoreError;
use crate::clock::Month;
use crate::ids::{TenantId, TokenId};
use async_trait::async_trait;

/// One request counted against a token's rate limit in its minute
/// ([`LimitStore::count_request`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateCount {
    /// Allowed: the `count`th request of the minute (1 to the limit).
    Within { count: u32 },
    /// Refused, and the first request of the minute to be refused.
    FirstOver,
    /// Refused; an earlier request of the minute was refused already.
    Over,
}

/// Rate limits and quotas.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// One round trip, one conditional write of one small item keyed by the
    /// token and the UTC minute (`minute`: epoch seconds / 60): counts one
    /// request against `limit`. Atomic across instances: of any number of
    /// concurrent calls for one token and minute, exactly `limit` answer
    /// `Within` (counts 1 to `limit`), one `FirstOver`, the rest `Over`; the
    /// stored count never passes `limit + 1`.
    async fn count_request(&self, token: &TokenId, minute: i64, limit: u32) -> Result<RateCount, StoreError>;

    /// Sets (or, with `None`, removes) a tenant's monthly quota of value
    /// reads. Operator path; `NotFound` without the tenant.
    async fn set_quota(&self, tenant: &TenantId, reads_per_month: Option<u64>) -> Result<(), StoreError>;

    /// One round trip, one conditional write of the tenant's counter for
    /// `month` (UTC): counts one value read if fewer than `quota`
    /// were counted; `Ok(false)`, writing nothing, if `quota` were. Atomic
    /// across instances: the count never passes the quota.
    async fn count_quota_read(&self, tenant: &TenantId, month: Month, quota: u64) -> Result<bool, StoreError>;

    /// Takes back a [`LimitStore::count_quota_read`] whose read was not served
    /// (never below zero).
    async fn uncount_quota_read(&self, tenant: &TenantId, month: Month) -> Result<(), StoreError>;

    /// One round trip (consistent): the reads counted for `month`.
    async fn quota_used(&self, tenant: &TenantId, month: Month) -> Result<u64, StoreError>;
}
