//! `ibyok admin migrate`: moves items of the earlier layout to the current
//! one. Everything keeps working without it (the earlier layout is still
//! read); it shrinks the items and retires the fallbacks' reads.
//!
//! - An issuer's set of child ids on its own item (`children`) becomes one
//!   entry per child in the children table, then the issuer gets its
//!   constant `issued` mark and loses the set. Entries first: a revocation
//!   meanwhile finds the children one way or the other.
//! - Tenants, keys and tokens gain their replicas in the replicas table
//!   (see `replicas.rs`); until then they are read from their items, a
//!   round trip more. A tenant's copies in the tenants table itself
//!   (`<tenantId>#<r>`, the layout before the one replica mechanism) are
//!   deleted once its replicas are made: nothing reads them.
//! - Audit events under the bare tenant id move to their shard partition
//!   (written, then the old one deleted). A moved `key.read` event is an
//!   insert and a removal on the stream: its counts net to zero.
//!
//! Idempotent: a second run finds nothing to move.

use super::*;

/// What a run moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateReport {
    /// Issuers whose child sets became entries.
    pub issuers: usize,
    /// Entries written (children purged since are skipped).
    pub child_entries: usize,
    /// Audit events moved to their shard partition.
    pub events: usize,
    /// Tenants whose replicas were made.
    pub tenants: usize,
    /// A tenant's copies in the tenants table, deleted.
    pub tenant_copies: usize,
    /// Keys and tokens whose replicas were made.
    pub records: usize,
}

impl DynamoStore {
    pub async fn migrate(&self) -> Result<MigrateReport, StoreError> {
        let mut report = MigrateReport::default();
        let issuers =
            self.scan_all(&self.tables.tokens, &format!("attribute_exists({LEGACY_CHILDREN})"), &[], &[]).await?;
        for issuer in issuers {
            let issuer_id = TokenId::from_stored(get_s(&issuer, TOKEN_ID)?.to_owned());
            let ids = match issuer.get(LEGACY_CHILDREN) {
                Some(AttributeValue::Ss(ids)) => ids.clone(),
                _ => Vec::new(),
            };
            let keys = ids.iter().map(|id| Item::from([(TOKEN_ID.to_owned(), s(id))])).collect();
            let got = self.batch_get(HashMap::from([(self.tables.tokens.clone(), keys)])).await?;
            let children =
                got.get(&self.tables.tokens).into_iter().flatten().map(token_from).collect::<Result<Vec<_>, _>>()?;
            let puts = children
                .iter()
                .map(|c| {
                    let put = build(PutRequest::builder().set_item(Some(child_item(issuer_id.as_str(), c))).build())?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            report.child_entries += puts.len();
            self.batch_write(&self.tables.children, puts).await?;
            let marked = self
                .client
                .update_item()
                .table_name(&self.tables.tokens)
                .key(TOKEN_ID, s(issuer_id.as_str()))
                .update_expression(format!("SET {ISSUED} = :yes REMOVE {LEGACY_CHILDREN}"))
                .condition_expression(format!("attribute_exists({TOKEN_ID})"))
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
                .send()
                .await
                .map_err(classify);
            // Purged meanwhile: nothing left to mark.
            match marked {
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
            report.issuers += 1;
        }
        // Events of the earlier layout: a partition key without a shard.
        let events = self
            .scan_all(&self.tables.audit, &format!("NOT contains({TENANT_ID}, :hash)"), &[], &[(":hash", "#")])
            .await?;
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        for old in events {
            let event = audit_from(&old)?;
            let tenant = TenantId::from_stored(get_s(&old, TENANT_ID)?.to_owned());
            let event_id =
                get_s(&old, EVENT_KEY)?.split_once('#').map(|(_, id)| id.to_owned()).ok_or_else(|| bad(EVENT_KEY))?;
            let moved = AuditEvent { tenant_id: Some(tenant.clone()), event_id, ..event };
            let mut item = old.clone();
            item.insert(TENANT_ID.to_owned(), s(audit_partition(&tenant, &moved)));
            puts.push(
                WriteRequest::builder().put_request(build(PutRequest::builder().set_item(Some(item)).build())?).build(),
            );
            let key = Item::from([
                (TENANT_ID.to_owned(), old[TENANT_ID].clone()),
                (EVENT_KEY.to_owned(), old[EVENT_KEY].clone()),
            ]);
            deletes.push(
                WriteRequest::builder()
                    .delete_request(build(DeleteRequest::builder().set_key(Some(key)).build())?)
                    .build(),
            );
        }
        report.events = puts.len();
        self.batch_write(&self.tables.audit, puts).await?;
        self.batch_write(&self.tables.audit, deletes).await?;
        // Tenants, keys and tokens without replicas.
        report.tenants = self.replicate_earlier(Record::Tenant).await?;
        report.records = self.replicate_earlier(Record::Key).await? + self.replicate_earlier(Record::Token).await?;
        // Then the earlier copies of tenants, in the tenants table: every
        // tenant has its replicas now, so nothing needs them.
        let copies = self
            .scan_all(&self.tables.tenants, &format!("contains({TENANT_ID}, :hash)"), &[], &[(":hash", "#")])
            .await?;
        let deletes = copies
            .iter()
            .map(|c| {
                let key =
                    Item::from([(TENANT_ID.to_owned(), c.get(TENANT_ID).cloned().ok_or_else(|| bad(TENANT_ID))?)]);
                let delete = build(DeleteRequest::builder().set_key(Some(key)).build())?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        report.tenant_copies = deletes.len();
        self.batch_write(&self.tables.tenants, deletes).await?;
        Ok(report)
    }
}
