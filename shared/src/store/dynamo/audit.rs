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

    /// Newest first across the tenant's partitions, merged lazily: each
    /// partition is asked (all at once) for a few events older than the
    /// cursor, about twice its share of the page; a partition is asked again,
    /// from where it stopped, only while it may still hold an event newer
    /// than the page's end (its last event read is newer than the
    /// `limit + 1`-th newest read so far). Events spread over the partitions
    /// at random, so one round trip nearly always does, reading ~7 events a
    /// partition for a page of 50 instead of 51. The cursor is the last event
    /// key listed.
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
        let partitions = audit_partitions(tenant);
        let chunk = ((limit + 1) * 2).div_ceil(partitions.len()).max(4).min(limit + 1);
        // Per partition: where to go on from (`None`: it has no more).
        let mut from: Vec<Option<Option<HashMap<String, AttributeValue>>>> = vec![Some(None); partitions.len()];
        let mut last: Vec<Option<String>> = vec![None; partitions.len()];
        let mut items: Vec<Item> = Vec::new();
        loop {
            // The `limit + 1`-th newest event read so far, if as many were.
            let mut keys: Vec<String> = items.iter().filter_map(|i| opt_s(i, EVENT_KEY)).collect();
            keys.sort_unstable_by(|a, b| b.cmp(a));
            let cut = keys.get(limit).cloned();
            let wanted: Vec<usize> = (0..partitions.len())
                .filter(|&p| from[p].is_some())
                .filter(|&p| match (&cut, &last[p]) {
                    (Some(cut), Some(last)) => last > cut,
                    _ => true,
                })
                .collect();
            if wanted.is_empty() {
                break;
            }
            let queries = wanted.iter().map(|&p| {
                let (partition, before, start) = (&partitions[p], before.clone(), from[p].clone().flatten());
                async move {
                    let mut q = self
                        .client
                        .query()
                        .table_name(&self.tables.audit)
                        .expression_attribute_values(":t", s(partition))
                        .scan_index_forward(false)
                        .limit(chunk as i32)
                        .set_exclusive_start_key(start);
                    q = match before {
                        Some(k) => q
                            .key_condition_expression("tenantId = :t AND eventKey < :before")
                            .expression_attribute_values(":before", k),
                        None => q.key_condition_expression("tenantId = :t"),
                    };
                    q.send().await.map_err(classify)
                }
            });
            let answers = futures::future::try_join_all(queries).await?;
            for (&p, resp) in wanted.iter().zip(answers) {
                let got = resp.items.unwrap_or_default();
                if let Some(l) = got.last().and_then(|i| opt_s(i, EVENT_KEY)) {
                    last[p] = Some(l);
                }
                from[p] = resp.last_evaluated_key.map(Some);
                items.extend(got);
            }
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
