//! Keys and their versions in memory ([`KeyStore`]).

use super::*;

#[async_trait]
impl KeyStore for MemoryStore {
    async fn create_key(&self, key: &KeyRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(existing) = s.keys.get(&key.key_id) {
                // A retry of this very write (its ciphertext) has landed.
                if existing.current.envelope.ciphertext == key.current.envelope.ciphertext {
                    return Ok(());
                }
                return Err(StoreError::Conflict(Conflict::Exists));
            }
            s.keys.insert(key.key_id.clone(), key.clone());
            push_audit(s, audit);
            Ok(())
        })
    }

    async fn update_key(
        &self,
        tenant: &TenantId,
        key: &KeyId,
        change: &KeyChange,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            let k = key_in_tenant(s, tenant, key)?;
            match change {
                KeyChange::Versions { expect, .. } => {
                    let found = (k.current.number, k.last_version, k.pending.as_ref().map(|v| v.number));
                    if found != (expect.current, expect.last, expect.pending) {
                        // A retry of this very change that landed.
                        let landed = k.shows(change);
                        return if landed { Ok(()) } else { Err(StoreError::Conflict(Conflict::Changed)) };
                    }
                    k.apply_versions(change);
                }
                KeyChange::Meta { name, mode_overrides } => {
                    k.name = name.clone();
                    k.mode_overrides = mode_overrides.clone();
                }
            }
            k.updated_at = at;
            push_audit(s, audit);
            Ok(())
        })
    }

    async fn delete_key(&self, tenant: &TenantId, key: &KeyId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            // Already gone (a concurrent delete, or a retry of this one) is
            // deleted, and its deletion wrote the event.
            if s.keys.contains_key(key) {
                key_in_tenant(s, tenant, key)?;
                s.keys.remove(key);
                push_audit(s, audit);
            }
            Ok(())
        })
    }

    async fn list_keys(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<KeyRecord>, StoreError> {
        let after = decode_cursor(tenant, cursor)?;
        self.read(|s| {
            let mut keys: Vec<_> = s.keys.values().filter(|k| &k.tenant_id == tenant).collect();
            keys.sort_by_key(|k| (k.created_at, k.key_id.clone()));
            let items = keys.into_iter().map(|k| (format!("{:020}{}", k.created_at.millis(), k.key_id), k.clone()));
            page(tenant, items, limit, after)
        })
    }

    async fn retire_versions(&self, now: Timestamp) -> Result<PurgeReport, StoreError> {
        self.with(|s| {
            let mut destroyed = 0;
            for k in s.keys.values_mut().filter(|k| k.previous_due(now)) {
                k.previous = None;
                destroyed += 1;
            }
            Ok(PurgeReport { items_read: destroyed, deleted: destroyed })
        })
    }
}
