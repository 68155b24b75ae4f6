//! Tenants and their settings in memory ([`TenantStore`]).

use super::*;

#[async_trait]
impl TenantStore for MemoryStore {
    async fn create_tenant(&self, tenant: &TenantRecord, root: &TokenRecord) -> Result<(), StoreError> {
        self.with(|s| {
            if s.tenants.contains_key(&tenant.tenant_id) || s.tokens.contains_key(&root.token_id) {
                return Err(StoreError::Conflict(Conflict::Exists));
            }
            s.tenants.insert(tenant.tenant_id.clone(), tenant.clone());
            s.purge_at.insert(root.token_id.clone(), root.grant.expires_at.ceil_seconds());
            if let Some(at) = root.notice_second() {
                s.notice_at.insert(root.token_id.clone(), at);
            }
            s.tokens.insert(root.token_id.clone(), root.clone());
            Ok(())
        })
    }

    async fn update_modes(
        &self,
        tenant: &TenantId,
        changes: &[(Environment, Mode)],
        audit: &AuditEvent,
    ) -> Result<TenantModes, StoreError> {
        self.with(|s| {
            let t = s.tenants.get_mut(tenant).ok_or(StoreError::NotFound)?;
            for (env, mode) in changes {
                t.modes.set(*env, *mode);
            }
            let modes = t.modes;
            if !changes.is_empty() {
                push_audit(s, audit);
            }
            Ok(modes)
        })
    }
}
