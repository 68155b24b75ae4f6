//! The members aggregate in memory: the records, and the invitations each
//! tenant holds (one member per invitation key).

use super::{decode_cursor, page, push_audit, MemoryStore};
use crate::clock::Timestamp;
use crate::ids::{MemberId, TenantId, TokenId};
use crate::member::{Invitee, MemberRecord, Provider, Role};
use crate::store::members::MemberStore;
use crate::store::{AuditEvent, Conflict, Page, StoreError};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Default)]
pub(super) struct Members {
    records: BTreeMap<MemberId, MemberRecord>,
}

impl Members {
    fn invited(&self, tenant: &TenantId, key: &str) -> Option<&MemberRecord> {
        self.records.values().find(|m| &m.tenant_id == tenant && m.invitee.key() == key)
    }

    fn owners(&self, tenant: &TenantId) -> usize {
        self.records.values().filter(|m| &m.tenant_id == tenant && m.role == Role::Owner).count()
    }

    /// The member `id` of `tenant`, and whether changing it away from
    /// owner would leave the tenant none.
    fn of(&self, tenant: &TenantId, id: &MemberId) -> Result<(MemberRecord, bool), StoreError> {
        let m = self.records.get(id).filter(|m| &m.tenant_id == tenant).ok_or(StoreError::NotFound)?;
        Ok((m.clone(), m.role == Role::Owner && self.owners(tenant) == 1))
    }
}

#[async_trait]
impl MemberStore for MemoryStore {
    async fn create_member(&self, member: &MemberRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(existing) = s.members.records.get(&member.member_id) {
                return match existing == member {
                    true => Ok(()),
                    false => Err(StoreError::Conflict(Conflict::Exists)),
                };
            }
            if s.members.invited(&member.tenant_id, &member.invitee.key()).is_some() {
                return Err(StoreError::Conflict(Conflict::AlreadyMember));
            }
            s.members.records.insert(member.member_id.clone(), member.clone());
            push_audit(s, audit);
            Ok(())
        })
    }

    async fn get_member(&self, tenant: &TenantId, id: &MemberId) -> Result<Option<MemberRecord>, StoreError> {
        self.read(|s| s.members.records.get(id).filter(|m| &m.tenant_id == tenant).cloned())
    }

    async fn list_members(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<MemberRecord>, StoreError> {
        let after = decode_cursor(tenant, cursor)?;
        self.read(|s| {
            let mut all: Vec<_> = s.members.records.values().filter(|m| &m.tenant_id == tenant).collect();
            all.sort_by_key(|m| (m.created_at, m.member_id.clone()));
            let items = all.into_iter().map(|m| (format!("{:020}{}", m.created_at.millis(), m.member_id), m.clone()));
            page(tenant, items, limit, after)
        })
    }

    async fn set_member_role(
        &self,
        tenant: &TenantId,
        id: &MemberId,
        role: Role,
        audit: &AuditEvent,
    ) -> Result<(MemberRecord, MemberRecord), StoreError> {
        self.with(|s| {
            let (member, last_owner) = s.members.of(tenant, id)?;
            if member.role == role {
                return Ok((member.clone(), member));
            }
            if last_owner {
                return Err(StoreError::Conflict(Conflict::LastOwner));
            }
            let changed = member.with_role(role);
            s.members.records.insert(id.clone(), changed.clone());
            push_audit(s, audit);
            Ok((member, changed))
        })
    }

    async fn delete_member(
        &self,
        tenant: &TenantId,
        id: &MemberId,
        audit: &AuditEvent,
    ) -> Result<MemberRecord, StoreError> {
        self.with(|s| {
            let (member, last_owner) = s.members.of(tenant, id)?;
            if last_owner {
                return Err(StoreError::Conflict(Conflict::LastOwner));
            }
            s.members.records.remove(id);
            push_audit(s, audit);
            Ok(member)
        })
    }

    async fn find_sign_in(&self, keys: &[String]) -> Result<Vec<MemberRecord>, StoreError> {
        self.read(|s| {
            let mut found: Vec<_> =
                s.members.records.values().filter(|m| keys.contains(&m.sign_in_key())).cloned().collect();
            found.sort_by(|a, b| (a.created_at, a.member_id.as_str()).cmp(&(b.created_at, b.member_id.as_str())));
            found
        })
    }

    async fn update_sign_in(&self, was: &MemberRecord, now: &MemberRecord) -> Result<(), StoreError> {
        self.with(|s| {
            let stored = s.members.records.get(&was.member_id).ok_or(StoreError::NotFound)?;
            let same = stored.tenant_id == was.tenant_id
                && stored.role == was.role
                && stored.subject == was.subject
                && stored.anchor == was.anchor;
            if !same {
                return Err(StoreError::Conflict(Conflict::Changed));
            }
            s.members.records.insert(was.member_id.clone(), now.clone());
            Ok(())
        })
    }
}

/// A member as the data file keeps it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MemberRow {
    member_id: String,
    tenant_id: String,
    provider: String,
    handle: String,
    subject: Option<String>,
    name: String,
    role: String,
    created_at: i64,
    created_by: Option<String>,
    last_sign_in_at: Option<i64>,
    /// Files written before sign-in have none.
    #[serde(default)]
    anchor: Option<String>,
}

impl Members {
    pub(super) fn rows(&self) -> Vec<MemberRow> {
        self.records
            .values()
            .map(|m| MemberRow {
                member_id: m.member_id.to_string(),
                tenant_id: m.tenant_id.to_string(),
                provider: m.invitee.provider.as_str().to_owned(),
                handle: m.invitee.handle.clone(),
                subject: m.subject.clone(),
                name: m.name.clone(),
                role: m.role.as_str().to_owned(),
                created_at: m.created_at.millis(),
                created_by: m.created_by.as_ref().map(ToString::to_string),
                last_sign_in_at: m.last_sign_in_at.map(Timestamp::millis),
                anchor: m.anchor.as_ref().map(ToString::to_string),
            })
            .collect()
    }

    pub(super) fn from_rows(rows: Vec<MemberRow>) -> Option<Self> {
        let mut out = Members::default();
        for r in rows {
            let id = MemberId::from_stored(r.member_id);
            let record = MemberRecord {
                member_id: id.clone(),
                tenant_id: TenantId::from_stored(r.tenant_id),
                invitee: Invitee::parse(Provider::parse(&r.provider)?, &r.handle)?,
                subject: r.subject,
                name: r.name,
                role: Role::parse(&r.role)?,
                created_at: Timestamp::from_millis(r.created_at),
                created_by: r.created_by.map(TokenId::from_stored),
                last_sign_in_at: r.last_sign_in_at.map(Timestamp::from_millis),
                anchor: r.anchor.map(TokenId::from_stored),
            };
            out.records.insert(id, record);
        }
        Some(out)
    }
}
