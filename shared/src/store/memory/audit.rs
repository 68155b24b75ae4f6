//! The audit log in memory ([`AuditStore`]).

use super::*;

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            push_audit(s, event);
            Ok(())
        })
    }

    async fn retract_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(events) = event.tenant_id.as_ref().and_then(|t| s.audit.get_mut(t)) {
                events.remove(&(event.at.millis(), event.event_id.clone()));
            }
            Ok(())
        })
    }

    async fn list_audit(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let after = decode_cursor(tenant, cursor)?;
        self.read(|s| {
            let events = s
                .audit
                .get(tenant)
                .into_iter()
                .flat_map(|m| m.iter().rev())
                .map(|((at, id), e)| (audit_position(*at, id), e.clone()));
            page(tenant, events, limit, after)
        })
    }
}
