//! The audit log on DynamoDB: events over the tenant's shards, listed newest first by merging them.

use super::*;

impl DynamoStore {
    /// Writes an audit event, once: its key is its own (time and event id),
    /// so a retry that finds it stored finds its own write.
    pub(super) async fn put_event_once(&self, e: &AuditEvent) -> Result<(), StoreError> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.tables.audit)
            .set_item(Some(audit_item(e)?))
            .condition_expression(format!("attribute_not_exists({EVENT_KEY})"))
            .send()
            .await;
        match sent.map_err(classify) {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes an audit event by its key (taking back a read that was not
    /// served); retried by the SDK, and a missing event is fine.
    pub(super) async fn delete_event(&self, e: &AuditEvent) -> Result<(), StoreError> {
        let tenant = e.tenant_id.as_ref().ok_or_else(|| bad(TENANT_ID))?;
        self.client
            .delete_item()
            .table_name(&self.tables.audit)
            .key(TENANT_ID, s(audit_partition(tenant, e)))
            .key(EVENT_KEY, s(event_key(e)))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl AuditStore for DynamoStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.put_event_once(event).await
    }

    async fn retract_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.delete_event(event).await
    }

    /// Newest first across the tenant's partitions: each is queried (at
    /// once) for up to `limit` events older than the cursor, and the pages
    /// are merged. The cursor is the last event key listed.
    async fn list_audit(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let limit = limit.clamp(1, 100);
        let before = match decode_cursor(tenant, cursor)? {
            None => None,
            Some(item) => Some(item.get(EVENT_KEY).cloned().ok_or(StoreError::BadCursor)?),
        };
        let queries = audit_partitions(tenant).into_iter().map(|partition| {
            let before = before.clone();
            async move {
                let mut q = self
                    .client
                    .query()
                    .table_name(&self.tables.audit)
                    .expression_attribute_values(":t", s(partition))
                    .scan_index_forward(false)
                    .limit(limit as i32 + 1);
                q = match before {
                    Some(k) => q
                        .key_condition_expression("tenantId = :t AND eventKey < :before")
                        .expression_attribute_values(":before", k),
                    None => q.key_condition_expression("tenantId = :t"),
                };
                q.send().await.map_err(classify)
            }
        });
        let mut items: Vec<Item> = Vec::new();
        for resp in futures::future::try_join_all(queries).await? {
            items.extend(resp.items.unwrap_or_default());
        }
        items.sort_by_key(|i| std::cmp::Reverse(opt_s(i, EVENT_KEY)));
        let more = items.len() > limit;
        items.truncate(limit);
        let next = match (more, items.last()) {
            (true, Some(last)) => {
                let key = Item::from([
                    (TENANT_ID.to_owned(), s(tenant.as_str())),
                    (EVENT_KEY.to_owned(), last[EVENT_KEY].clone()),
                ]);
                encode_cursor(&key)
            }
            _ => None,
        };
        let items = items.iter().map(audit_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next })
    }
}
