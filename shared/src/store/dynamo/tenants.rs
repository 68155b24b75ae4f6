//! Tenants on DynamoDB: the tenant's item and its replicas, written in one transaction.

use super::*;

impl DynamoStore {
    /// One change to a tenant's item and to each of its replicas, with its
    /// audit event if any, in one transaction: all or nothing. A tenant of
    /// the earlier layout (no replicas) gains them from its item first.
    /// `NotFound` without the item.
    pub(super) async fn update_tenant(
        &self,
        tenant: &TenantId,
        update: impl Fn(String) -> Result<TransactWriteItem, StoreError>,
        audit: Option<&AuditEvent>,
    ) -> Result<(), StoreError> {
        let mut items = vec![update(tenant.to_string())?];
        for r in 0..TENANT_REPLICAS {
            items.push(update(tenant_replica_id(tenant, r))?);
        }
        if let Some(audit) = audit {
            items.push(self.audit_put(audit)?);
        }
        let sent = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
        match sent.map_err(classify_tx) {
            Ok(_) => Ok(()),
            Err(Ok(0)) => Err(StoreError::NotFound),
            // A replica missing: made from the item, and the change goes again.
            Err(Ok(_)) => {
                self.ensure_tenant_replicas(tenant).await?;
                self.transact_or(items, |_| StoreError::NotFound).await
            }
            Err(Err(e)) => Err(e),
        }
    }

    /// A tenant's own item (not a replica), consistently; a batch read, as
    /// every other read of the tenants table.
    pub(super) async fn tenant_item_of(&self, tenant: &TenantId) -> Result<Option<Item>, StoreError> {
        let key = Item::from([(TENANT_ID.to_owned(), s(tenant.as_str()))]);
        let mut got = self.batch_get(HashMap::from([(self.tables.tenants.clone(), vec![key])])).await?;
        Ok(got.remove(&self.tables.tenants).and_then(|mut v| v.pop()))
    }

    /// Makes the missing replicas of a tenant's item from the item (a
    /// tenant of the earlier layout); `NotFound` without the item.
    pub(super) async fn ensure_tenant_replicas(&self, tenant: &TenantId) -> Result<(), StoreError> {
        let main = self.tenant_item_of(tenant).await?.ok_or(StoreError::NotFound)?;
        for r in 0..TENANT_REPLICAS {
            let put = self
                .client
                .put_item()
                .table_name(&self.tables.tenants)
                .set_item(Some(tenant_replica(&main, tenant, r)))
                .condition_expression("attribute_not_exists(tenantId)")
                .send()
                .await;
            match put.map_err(classify) {
                // Made meanwhile by another writer, from the same item.
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The ids on one page of a tenant index, then their items, consistently.
    pub(super) async fn tenant_page(
        &self,
        table: &str,
        id_attr: &str,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let start = decode_cursor(tenant, cursor)?;
        let resp = self
            .client
            .query()
            .table_name(table)
            .index_name(TENANT_INDEX)
            .key_condition_expression("tenantId = :t")
            .expression_attribute_values(":t", s(tenant.as_str()))
            .limit(limit.clamp(1, 100) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let ids: Vec<String> =
            resp.items().iter().filter_map(|i| i.get(id_attr).and_then(|v| v.as_s().ok()).cloned()).collect();
        let next = resp.last_evaluated_key().and_then(encode_cursor);
        if ids.is_empty() {
            return Ok((Vec::new(), next));
        }
        let keys = ids.iter().map(|id| Item::from([(id_attr.to_owned(), s(id))])).collect();
        let mut got = self.batch_get(HashMap::from([(table.to_owned(), keys)])).await?;
        let mut by_id: HashMap<String, Item> = got
            .remove(table)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.get(id_attr).and_then(|v| v.as_s().ok()).cloned().map(|id| (id, i)))
            .collect();
        // Keep the index's order; an item deleted meanwhile is skipped.
        Ok((ids.iter().filter_map(|id| by_id.remove(id)).collect(), next))
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
        for r in 0..TENANT_REPLICAS {
            items.push(self.put(&self.tables.tenants, tenant_replica(&main, &tenant.tenant_id, r), None)?);
        }
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
        let update = |id: String| {
            let mut update = Update::builder()
                .table_name(&self.tables.tenants)
                .key(TENANT_ID, s(id))
                .update_expression(format!("SET {}", sets.join(", ")))
                .condition_expression("attribute_exists(tenantId)");
            for (e, m) in changes {
                update = update
                    .expression_attribute_names(format!("#{}", e.as_str()), e.as_str())
                    .expression_attribute_values(format!(":{}", e.as_str()), s(m.as_str()));
            }
            build(update.build()).map(|u| TransactWriteItem::builder().update(u).build())
        };
        self.update_tenant(tenant, update, Some(audit)).await?;
        let got = self.fetch(&Fetch { tenant: Some(tenant.clone()), ..Fetch::default() }).await?;
        got.tenant.map(|t| t.modes).ok_or(StoreError::NotFound)
    }
}
