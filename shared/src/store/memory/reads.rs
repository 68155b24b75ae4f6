//! The read path in memory ([`ReadStore`]): counts at once, as the stream would.

use super::*;

#[async_trait]
impl ReadStore for MemoryStore {
    async fn fetch(&self, want: &Fetch) -> Result<Fetched, StoreError> {
        self.read(|s| Fetched {
            tokens: want.tokens.iter().filter_map(|id| s.tokens.get(id).map(|t| (id.clone(), t.clone()))).collect(),
            keys: want.keys.iter().filter_map(|id| s.keys.get(id).map(|k| (id.clone(), k.clone()))).collect(),
            tenant: want.tenant.as_ref().and_then(|t| s.tenants.get(t).cloned()),
        })
    }

    async fn record_read(
        &self,
        key: &KeyId,
        token: &TokenId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(tenant) = audit.tenant_id.clone() {
                count_read(s, &tenant, key, token, at, 1);
            }
            push_audit(s, audit);
            Ok(())
        })
    }

    async fn record_expected_read(
        &self,
        expect: &ExpectedRead,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.with(|s| {
            let modes = s.tenants.get(&expect.tenant_id).map(|t| t.modes).unwrap_or_default();
            if !expect.holds(s.tokens.get(&expect.token_id), s.keys.get(&expect.key_id), &modes, at) {
                return Ok(false);
            }
            // A retry of a write that landed finds its own event.
            let landed = s
                .audit
                .get(&expect.tenant_id)
                .is_some_and(|m| m.contains_key(&(audit.at.millis(), audit.event_id.clone())));
            if landed {
                return Ok(true);
            }
            count_read(s, &expect.tenant_id, &expect.key_id, &expect.token_id, at, 1);
            push_audit(s, audit);
            Ok(true)
        })
    }

    async fn unrecord_read(&self, key: &KeyId, token: &TokenId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            let Some(tenant) = audit.tenant_id.clone() else { return Ok(()) };
            let stored = s.audit.get_mut(&tenant).and_then(|m| m.remove(&(audit.at.millis(), audit.event_id.clone())));
            // Only a read whose event was stored was counted.
            if stored.is_some() {
                count_read(s, &tenant, key, token, audit.at, -1);
            }
            Ok(())
        })
    }
}
