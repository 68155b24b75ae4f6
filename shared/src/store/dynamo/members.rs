//! The members aggregate on DynamoDB: one item per member in the members
//! table (listed through its tenant index), each tenant's invitation claims
//! and its count of owners beside them ([`schema::MEMBERS`]). Every change
//! writes the member, the claim, the count and the audit event in one
//! transaction, so the rules of [`crate::member`] hold under concurrency:
//! two invitations of one person race for one claim, and two demotions of
//! the last two owners for the one count.

use super::*;
use crate::ids::MemberId;
use crate::member::{Invitee, MemberRecord, Provider, Role};
use crate::store::members::MemberStore;
use schema::{MEMBER_KEY, SIGN_IN_KEY};

fn claim_key(tenant: &TenantId, invitee: &Invitee) -> String {
    format!("invite#{tenant}#{}", invitee.key())
}

fn owners_key(tenant: &TenantId) -> String {
    format!("owners#{tenant}")
}

fn member_item(m: &MemberRecord) -> Item {
    let mut item = Item::from([
        (MEMBER_KEY.into(), s(m.member_id.as_str())),
        (TENANT_ID.into(), s(m.tenant_id.as_str())),
        ("provider".into(), s(m.invitee.provider.as_str())),
        ("handle".into(), s(&m.invitee.handle)),
        ("name".into(), s(&m.name)),
        ("role".into(), s(m.role.as_str())),
        (CREATED_AT.into(), n(m.created_at.millis())),
        (SIGN_IN_KEY.into(), s(m.sign_in_key())),
    ]);
    if let Some(anchor) = &m.anchor {
        item.insert("anchor".into(), s(anchor.as_str()));
    }
    if let Some(sub) = &m.subject {
        item.insert("subject".into(), s(sub));
    }
    if let Some(by) = &m.created_by {
        item.insert("createdBy".into(), s(by.as_str()));
    }
    if let Some(at) = m.last_sign_in_at {
        item.insert("lastSignInAt".into(), n(at.millis()));
    }
    item
}

fn member_from(item: &Item) -> Result<MemberRecord, StoreError> {
    let provider = Provider::parse(get_s(item, "provider")?).ok_or_else(|| bad("provider"))?;
    Ok(MemberRecord {
        member_id: MemberId::from_stored(get_s(item, MEMBER_KEY)?.to_owned()),
        tenant_id: TenantId::parse(get_s(item, TENANT_ID)?).ok_or_else(|| bad(TENANT_ID))?,
        invitee: Invitee::parse(provider, get_s(item, "handle")?).ok_or_else(|| bad("handle"))?,
        subject: opt_s(item, "subject"),
        name: get_s(item, "name")?.to_owned(),
        role: Role::parse(get_s(item, "role")?).ok_or_else(|| bad("role"))?,
        created_at: ts(item, CREATED_AT)?,
        created_by: opt_s(item, "createdBy").map(TokenId::from_stored),
        last_sign_in_at: opt_ts(item, "lastSignInAt"),
        anchor: opt_s(item, "anchor").map(TokenId::from_stored),
    })
}

/// The condition that the stored member is still `was`: in its tenant,
/// role, subject and anchor (a sign-in and a change of role never overwrite
/// each other's anchor).
fn still(was: &MemberRecord) -> (String, HashMap<String, String>, HashMap<String, AttributeValue>) {
    let mut cond = "tenantId = :tenant AND #role = :role".to_owned();
    let names = HashMap::from([("#role".to_owned(), "role".to_owned())]);
    let mut values =
        HashMap::from([(":tenant".to_owned(), s(was.tenant_id.as_str())), (":role".to_owned(), s(was.role.as_str()))]);
    for (attr, value) in [("subject", was.subject.as_deref()), ("anchor", was.anchor.as_ref().map(|a| a.as_str()))] {
        match value {
            Some(v) => {
                cond.push_str(&format!(" AND {attr} = :{attr}"));
                values.insert(format!(":{attr}"), s(v));
            }
            None => cond.push_str(&format!(" AND attribute_not_exists({attr})")),
        }
    }
    (cond, names, values)
}

impl DynamoStore {
    fn key_of_member(id: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([(MEMBER_KEY.to_owned(), s(id))])
    }

    /// The owners' count moved by `delta`; a decrease only while another
    /// owner stays.
    fn owners_change(&self, tenant: &TenantId, delta: i64) -> Result<TransactWriteItem, StoreError> {
        let mut u = Update::builder()
            .table_name(&self.tables.members)
            .set_key(Some(Self::key_of_member(&owners_key(tenant))))
            .update_expression("ADD #count :d")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":d", n(delta));
        if delta < 0 {
            u = u.condition_expression("#count > :one").expression_attribute_values(":one", n(1));
        }
        Ok(TransactWriteItem::builder().update(build(u.build())?).build())
    }

    /// The member's item, on the condition that it is still `was` (its
    /// role, in its tenant): `None` to delete it.
    fn member_write(&self, was: &MemberRecord, now: Option<&MemberRecord>) -> Result<TransactWriteItem, StoreError> {
        let (cond, names, values) = still(was);
        Ok(match now {
            Some(m) => {
                let put = Put::builder()
                    .table_name(&self.tables.members)
                    .set_item(Some(member_item(m)))
                    .condition_expression(cond)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values));
                TransactWriteItem::builder().put(build(put.build())?).build()
            }
            None => {
                let del = Delete::builder()
                    .table_name(&self.tables.members)
                    .set_key(Some(Self::key_of_member(was.member_id.as_str())))
                    .condition_expression(cond)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values));
                TransactWriteItem::builder().delete(build(del.build())?).build()
            }
        })
    }

    /// Writes a change of `was` into `now` (`None`: its removal) with its
    /// event; a member changed meanwhile is read again and the change
    /// judged afresh by `next`. Answers the member as it was and as it is
    /// (as it was, for a removal).
    async fn change_member(
        &self,
        tenant: &TenantId,
        id: &MemberId,
        audit: &AuditEvent,
        next: impl Fn(&MemberRecord) -> Option<Option<MemberRecord>>,
    ) -> Result<(MemberRecord, MemberRecord), StoreError> {
        let mut backoff = Backoff::new(4, std::time::Duration::from_millis(20));
        loop {
            let was = self.get_member(tenant, id).await?.ok_or(StoreError::NotFound)?;
            // `None`: nothing to change.
            let Some(now) = next(&was) else { return Ok((was.clone(), was)) };
            let mut items = vec![self.member_write(&was, now.as_ref())?];
            let owner_after = now.as_ref().is_some_and(|m| m.role == Role::Owner);
            let owners_at = items.len();
            match (was.role == Role::Owner, owner_after) {
                (true, false) => items.push(self.owners_change(tenant, -1)?),
                (false, true) => items.push(self.owners_change(tenant, 1)?),
                _ => {}
            }
            if now.is_none() {
                let claim = Delete::builder()
                    .table_name(&self.tables.members)
                    .set_key(Some(Self::key_of_member(&claim_key(tenant, &was.invitee))));
                items.push(TransactWriteItem::builder().delete(build(claim.build())?).build());
            }
            items.push(self.audit_put(audit)?);
            let outcome = self
                .transact_or(items, |i| match i {
                    0 => StoreError::Conflict(Conflict::Changed),
                    i if i == owners_at => StoreError::Conflict(Conflict::LastOwner),
                    _ => StoreError::Conflict(Conflict::Changed),
                })
                .await;
            match outcome {
                Ok(()) => return Ok((was.clone(), now.unwrap_or(was))),
                Err(StoreError::Conflict(Conflict::Changed)) => {
                    if !backoff.wait().await {
                        return Err(StoreError::Conflict(Conflict::Changed));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait]
impl MemberStore for DynamoStore {
    async fn create_member(&self, member: &MemberRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let claim = Item::from([
            (MEMBER_KEY.to_owned(), s(claim_key(&member.tenant_id, &member.invitee))),
            ("memberId".to_owned(), s(member.member_id.as_str())),
        ]);
        let mut items = vec![
            self.put(&self.tables.members, member_item(member), Some("attribute_not_exists(memberKey)"))?,
            self.put(&self.tables.members, claim, Some("attribute_not_exists(memberKey)"))?,
        ];
        if member.role == Role::Owner {
            items.push(self.owners_change(&member.tenant_id, 1)?);
        }
        items.push(self.audit_put(audit)?);
        let outcome = self
            .transact_or(items, |i| match i {
                0 => StoreError::Conflict(Conflict::Exists),
                _ => StoreError::Conflict(Conflict::AlreadyMember),
            })
            .await;
        match outcome {
            // A retry of this very write that had landed (its claim then
            // names it too: judged by the member alone).
            Err(StoreError::Conflict(Conflict::Exists | Conflict::AlreadyMember))
                if self.get_member(&member.tenant_id, &member.member_id).await?.as_ref() == Some(member) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    async fn get_member(&self, tenant: &TenantId, id: &MemberId) -> Result<Option<MemberRecord>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.tables.members)
            .set_key(Some(Self::key_of_member(id.as_str())))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let member = got.item.as_ref().map(member_from).transpose()?;
        Ok(member.filter(|m| &m.tenant_id == tenant))
    }

    async fn list_members(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<MemberRecord>, StoreError> {
        let (items, next) = self.tenant_page(&self.tables.members, MEMBER_KEY, tenant, limit, cursor).await?;
        let items = items.iter().map(member_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items: items.into_iter().filter(|m| &m.tenant_id == tenant).collect(), next })
    }

    async fn set_member_role(
        &self,
        tenant: &TenantId,
        id: &MemberId,
        role: Role,
        audit: &AuditEvent,
    ) -> Result<(MemberRecord, MemberRecord), StoreError> {
        self.change_member(tenant, id, audit, |was| (was.role != role).then(|| Some(was.with_role(role)))).await
    }

    async fn delete_member(
        &self,
        tenant: &TenantId,
        id: &MemberId,
        audit: &AuditEvent,
    ) -> Result<MemberRecord, StoreError> {
        Ok(self.change_member(tenant, id, audit, |_| Some(None)).await?.0)
    }

    async fn find_sign_in(&self, keys: &[String]) -> Result<Vec<MemberRecord>, StoreError> {
        let queries = keys.iter().map(|key| {
            self.client
                .query()
                .table_name(&self.tables.members)
                .index_name(schema::SIGN_IN_INDEX)
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", SIGN_IN_KEY)
                .expression_attribute_values(":k", s(key))
                .limit(100)
                .send()
        });
        let mut found = Vec::new();
        for answer in futures::future::join_all(queries).await {
            for item in answer.map_err(classify)?.items.unwrap_or_default() {
                found.push(member_from(&item)?);
            }
        }
        found.sort_by(|a, b| (a.created_at, a.member_id.as_str()).cmp(&(b.created_at, b.member_id.as_str())));
        Ok(found)
    }

    async fn update_sign_in(&self, was: &MemberRecord, now: &MemberRecord) -> Result<(), StoreError> {
        let (cond, names, values) = still(was);
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.members)
            .set_item(Some(member_item(now)))
            .condition_expression(cond)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match written(put.map_err(classify)) {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Conflict(Conflict::Changed)),
            Err(e) => Err(e),
        }
    }
}
