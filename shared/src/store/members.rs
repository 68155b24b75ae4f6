//! The members aggregate: the people of a tenant ([`MemberRecord`]) and
//! their roles. The rules are [`crate::member`]'s; each write keeps them in
//! one transaction with its audit event.

use super::{AuditEvent, Page, StoreError};
use crate::ids::{MemberId, TenantId};
use crate::member::{MemberRecord, Role};
use async_trait::async_trait;

#[async_trait]
pub trait MemberStore: Send + Sync {
    /// One round trip (one transaction): stores `member`, claims its
    /// invitation in its tenant, counts it among the owners if it is one,
    /// and writes `audit` (`member.create`).
    ///
    /// - `Conflict::AlreadyMember`: the tenant has a member invited under the
    ///   same invitation key ([`crate::member::Invitee::key`]); nothing is
    ///   written.
    /// - A retry of this very write, found stored alike, is `Ok`.
    async fn create_member(&self, member: &MemberRecord, audit: &AuditEvent) -> Result<(), StoreError>;

    /// One round trip, consistent: the member, if it is in `tenant`.
    async fn get_member(&self, tenant: &TenantId, id: &MemberId) -> Result<Option<MemberRecord>, StoreError>;

    /// Two round trips (index query, consistent batch read): the tenant's
    /// members, oldest first. `BadCursor` for a cursor this store did not
    /// give this tenant.
    async fn list_members(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<MemberRecord>, StoreError>;

    /// One round trip (one transaction, after a consistent read): sets the
    /// member's role ([`MemberRecord::with_role`]: a demotion drops the
    /// anchor) and writes `audit` (`member.update`); answers the member as
    /// it was and as it now is.
    ///
    /// - `NotFound` if the member is missing or another tenant's.
    /// - `Conflict::LastOwner` if it is the tenant's last owner and `role`
    ///   is not owner.
    /// - Setting the role it has already changes nothing and writes no event.
    async fn set_member_role(
        &self,
        tenant: &TenantId,
        id: &MemberId,
        role: Role,
        audit: &AuditEvent,
    ) -> Result<(MemberRecord, MemberRecord), StoreError>;

    /// One round trip (one transaction, after a consistent read): removes
    /// the member and its invitation, and writes `audit` (`member.delete`);
    /// answers the member as it was.
    ///
    /// - `NotFound` if the member is missing or another tenant's.
    /// - `Conflict::LastOwner` if it is the tenant's last owner.
    async fn delete_member(
        &self,
        tenant: &TenantId,
        id: &MemberId,
        audit: &AuditEvent,
    ) -> Result<MemberRecord, StoreError>;

    /// One round trip (eventually consistent): the members, across
    /// tenants, found by any of `keys` ([`MemberRecord::sign_in_key`]),
    /// oldest first.
    async fn find_sign_in(&self, keys: &[String]) -> Result<Vec<MemberRecord>, StoreError>;

    /// One round trip: replaces `was` by `now` (a sign-in's binding, name,
    /// time and anchor), on the condition that the stored member is still
    /// `was` in its role, subject and anchor; `Conflict::Changed` if not,
    /// `NotFound` if it is gone. No audit event: the sign-in's goes with
    /// its session.
    async fn update_sign_in(&self, was: &MemberRecord, now: &MemberRecord) -> Result<(), StoreError>;
}
