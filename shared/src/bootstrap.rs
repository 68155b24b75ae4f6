//! A tenant's first token: made by the operator, straight into the store
//! (no HTTP route creates tenants). It holds every scope, has no issuer and
//! is valid for one year. The operator may name the tenant's first owner
//! too ([`first_owner`]), whose invitation binds at their first sign-in.

use crate::clock::Timestamp;
use crate::ids::TenantId;
use crate::member::{Invitee, MemberRecord, Role};
use crate::mode::TenantModes;
use crate::secret::TokenSecret;
use crate::store::{AuditAction, AuditEvent, Store, StoreError, TenantRecord, TokenRecord};
use crate::token::{Grant, Scopes};

pub const ROOT_TOKEN_SECONDS: i64 = 31_536_000;

pub struct Bootstrapped {
    pub tenant: TenantRecord,
    pub root: TokenRecord,
    /// Shown once, to the operator.
    pub token: TokenSecret,
}

pub async fn create_tenant(store: &dyn Store, name: &str, now: Timestamp) -> Result<Bootstrapped, StoreError> {
    let tenant = TenantRecord {
        tenant_id: TenantId::generate(),
        name: name.to_owned(),
        modes: TenantModes::default(),
        created_at: now,
        reads_per_month: None,
    };
    let (root, token) = root_token(&tenant.tenant_id, name, now);
    store.create_tenant(&tenant, &root).await?;
    Ok(Bootstrapped { tenant, root, token })
}

/// A root token record for `tenant` and its secret.
pub fn root_token(tenant: &TenantId, name: &str, now: Timestamp) -> (TokenRecord, TokenSecret) {
    let grant = Grant {
        scopes: Scopes::all(),
        expires_at: now.plus_seconds(ROOT_TOKEN_SECONDS),
        key_ids: None,
        allowed_cidrs: None,
        rate_limit: None,
    };
    let (record, parsed) = TokenRecord::fresh(tenant, format!("{name} root"), grant, Vec::new(), None, now);
    (record, parsed.secret().clone())
}

/// The tenant's first owner, invited by the operator (no token made the
/// invitation: its `member.create` event has no actor).
pub async fn first_owner(
    store: &dyn Store,
    tenant: &TenantId,
    invitee: Invitee,
    now: Timestamp,
    audit_retention_days: i64,
) -> Result<MemberRecord, StoreError> {
    let member = MemberRecord::invited(tenant, invitee, Role::Owner, None, None, now);
    let mut event = AuditEvent::by_operator(tenant, AuditAction::MemberCreate, now, audit_retention_days);
    event.detail = Some(format!("{} {} as owner (by the operator)", member.member_id, member.invitee.key()));
    store.create_member(&member, &event).await?;
    Ok(member)
}
