//! The audit digests in memory ([`DigestStore`]).

use super::*;

/// A digest's place in its tenant's listing, newest first: `through`,
/// shard and seq, inverted so that the position grows along the page.
fn digest_position(d: &AuditDigest) -> String {
    format!("{:020}#{:010}#{:020}", i64::MAX - d.through.millis(), u32::MAX - d.shard, u64::MAX - d.seq)
}

#[async_trait]
impl DigestStore for MemoryStore {
    async fn digest_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        self.read(|s| s.tenants.keys().cloned().collect())
    }

    async fn last_digest(&self, tenant: &TenantId, shard: u32) -> Result<Option<AuditDigest>, StoreError> {
        self.read(|s| {
            s.digests.get(&(tenant.clone(), shard)).and_then(|chain| chain.last_key_value()).map(|(_, d)| d.clone())
        })
    }

    async fn shard_events(
        &self,
        tenant: &TenantId,
        shard: u32,
        after: i64,
        through: i64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.read(|s| {
            s.audit
                .get(tenant)
                .into_iter()
                .flat_map(|m| m.range((after + 1, String::new())..(through.saturating_add(1), String::new())))
                .filter(|((_, id), _)| audit_shard(id) == shard)
                .take(limit)
                .map(|(_, e)| e.clone())
                .collect()
        })
    }

    async fn put_digest(&self, digest: &AuditDigest) -> Result<(), StoreError> {
        self.with(|s| {
            let chain = s.digests.entry((digest.tenant_id.clone(), digest.shard)).or_default();
            if chain.contains_key(&digest.seq) {
                return Err(StoreError::Conflict(Conflict::Exists));
            }
            chain.insert(digest.seq, digest.clone());
            Ok(())
        })
    }

    async fn list_digests(
        &self,
        tenant: &TenantId,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<AuditDigest>, StoreError> {
        let after = decode_cursor(tenant, cursor)?;
        let limit = limit.clamp(1, DIGESTS_PAGE_MAX);
        self.read(|s| {
            let mut all: Vec<(String, AuditDigest)> = s
                .digests
                .iter()
                .filter(|((t, _), _)| t == tenant)
                .flat_map(|(_, chain)| chain.values())
                .filter(|d| from.is_none_or(|f| d.through >= f) && to.is_none_or(|t| d.through <= t))
                .map(|d| (digest_position(d), d.clone()))
                .collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            page(tenant, all.into_iter(), limit, after)
        })
    }
}
