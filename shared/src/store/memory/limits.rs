//! Rate limits and quotas in memory ([`LimitStore`]).

use super::*;

#[async_trait]
impl LimitStore for MemoryStore {
    async fn count_request(&self, token: &TokenId, minute: i64, limit: u32) -> Result<RateCount, StoreError> {
        let mut rate = self.rate.lock().map_err(|_| StoreError::internal(FaultKind::Local, "store lock poisoned"))?;
        if rate.len() >= RATE_COUNTERS_KEPT {
            rate.retain(|(_, m), _| *m >= minute - 1);
        }
        let count = rate.entry((token.clone(), minute)).or_insert(0);
        // As DynamoDB's condition: the count stops at `limit + 1`.
        if *count > limit {
            return Ok(RateCount::Over);
        }
        *count += 1;
        Ok(if *count <= limit { RateCount::Within { count: *count } } else { RateCount::FirstOver })
    }

    async fn set_quota(&self, tenant: &TenantId, reads_per_month: Option<u64>) -> Result<(), StoreError> {
        self.with(|s| {
            s.tenants.get_mut(tenant).ok_or(StoreError::NotFound)?.reads_per_month = reads_per_month;
            Ok(())
        })
    }

    async fn count_quota_read(&self, tenant: &TenantId, month: Month, quota: u64) -> Result<bool, StoreError> {
        self.with(|s| {
            let used = s.quota_used.entry((tenant.clone(), month)).or_insert(0);
            if *used >= quota {
                return Ok(false);
            }
            *used += 1;
            Ok(true)
        })
    }

    async fn uncount_quota_read(&self, tenant: &TenantId, month: Month) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(used) = s.quota_used.get_mut(&(tenant.clone(), month)) {
                *used = used.saturating_sub(1);
            }
            Ok(())
        })
    }

    async fn quota_used(&self, tenant: &TenantId, month: Month) -> Result<u64, StoreError> {
        self.read(|s| s.quota_used.get(&(tenant.clone(), month)).copied().unwrap_or(0))
    }
}
