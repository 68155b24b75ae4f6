//! Tenants on DynamoDB: the tenant's item and its replicas (the replicas
//! table's one mechanism), written in one transaction.

use super::*;

impl DynamoStore {
    /// One change to a tenant's item and to each of its replicas, with its
    /// audit event if any, in one transaction: all or nothing
    /// ([`DynamoStore::update_replicated`]). `update(table, key)` builds the
    /// change; its condition must fail on a missing item. `NotFound` without
    /// the item.
    pub(super) async fn update_tenant(
        &self,
        tenant: &TenantId,
        update: impl Fn(&str, Item) -> Result<Update, StoreError>,
        audit: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        let extra = audit.map(|a| self.audit_put(a)).transpose()?.into_iter().collect();
        self.update_replicated(Record::Tenant, tenant.as_str(), update, extra, |_| StoreError::NotFound).await
    }
}

#[async_trait]
impl TenantStore for DynamoStore {
    async fn create_tenant(&self, tenant: &TenantRecord, root: &TokenRecord) -> Result<(), StoreError> {
        let main = tenant_item(tenant);
        let mut items = vec![
            self.put(&self.tables.tenants, main.clone(), Some("attribute_not_exists(tenantId)"))?,
            self.put(&self.tables.tokens, token_item(root), Some("attribute_not_exists(tokenId)"))?,
        ];
        items.extend(self.replica_puts(Record::Token, &token_item(root), root.token_id.as_str())?);
        items.extend(self.replica_puts(Record::Tenant, &main, tenant.tenant_id.as_str())?);
        self.transact_or(items, |_| StoreError::Conflict(Conflict::Exists)).await
    }

    async fn update_modes(
        &self,
        tenant: &TenantId,
        changes: &[(Environment, Mode)],
        audit: &AuditEvent,
    ) -> Result<TenantModes, StoreError> {
        if changes.is_empty() {
            let got = self.fetch(&Fetch { tenant: Some(tenant.clone()), ..Fetch::default() }).await?;
            return Ok(got.tenant.map(|t| t.modes).unwrap_or_default());
        }
        let sets: Vec<String> = changes.iter().map(|(e, _)| format!("#{0} = :{0}", e.as_str())).collect();
        let update = |table: &str, key: Item| {
            let mut update = Update::builder()
                .table_name(table)
                .set_key(Some(key))
                .update_expression(format!("SET {}", sets.join(", ")))
                .condition_expression("attribute_exists(tenantId)");
            for (e, m) in changes {
                update = update
                    .expression_attribute_names(format!("#{}", e.as_str()), e.as_str())
                    .expression_attribute_values(format!(":{}", e.as_str()), s(m.as_str()));
            }
            build(update.build())
        };
        self.update_tenant(tenant, update, Some(audit)).await?;
        let got = self.fetch(&Fetch { tenant: Some(tenant.clone()), ..Fetch::default() }).await?;
        got.tenant.map(|t| t.modes).ok_or(StoreError::NotFound)
    }
}
