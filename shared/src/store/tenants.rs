//! The tenants aggregate: a tenant and its settings (the environments'
//! default modes, the operator's quota).

use super::{AuditEvent, StoreError, TokenRecord};
use crate::clock::Timestamp;
use crate::ids::TenantId;
use crate::mode::{Environment, Mode, TenantModes};
use async_trait::async_trait;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRecord {
    pub tenant_id: TenantId,
    pub name: String,
    pub modes: TenantModes,
    pub created_at: Timestamp,
    /// The operator's monthly quota of value reads; `None` when unlimited.
    pub reads_per_month: Option<u64>,
}

/// Tenants and their settings.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates a tenant with its first (root) token. Operator path.
    async fn create_tenant(&self, tenant: &TenantRecord, root: &TokenRecord) -> Result<(), StoreError>;

    /// One round trip (one transaction: the update and its audit event, or
    /// neither): sets the given environments' defaults and answers the whole.
    /// With no change, writes nothing (no event) and answers the stored whole.
    async fn update_modes(
        &self,
        tenant: &TenantId,
        changes: &[(Environment, Mode)],
        audit: &AuditEvent,
    ) -> Result<TenantModes, StoreError>;
}
