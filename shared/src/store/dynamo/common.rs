//! What every aggregate's file uses: transactional puts, a transaction
//! with its failed condition mapped, landed-write checks and batch reads.

use super::*;

impl DynamoStore {
    pub(super) fn put(
        &self,
        table: &str,
        item: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = build(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(Into::into))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    pub(super) fn audit_put(&self, e: &AuditEvent) -> Result<TransactWriteItem, StoreError> {
        self.put(&self.tables.audit, audit_item(e)?, None)
    }

    /// Runs a transaction; a failed condition on item `i` becomes `on_fail(i)`.
    pub(super) async fn transact_or(
        &self,
        items: Vec<TransactWriteItem>,
        on_fail: impl Fn(usize) -> StoreError,
    ) -> Result<(), StoreError> {
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify_tx(e).map_or_else(|other| other, on_fail)),
        }
    }

    /// A token creation's outcome, where `Conflict::Exists` that finds the
    /// token stored with its own verifier is a retry of this very write
    /// that had landed.
    pub(super) async fn landed_or(
        &self,
        token: &TokenRecord,
        outcome: Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match outcome {
            Err(StoreError::Conflict(Conflict::Exists))
                if self
                    .holds(&self.tables.tokens, TOKEN_ID, token.token_id.as_str(), "verifier", &token.verifier)
                    .await? =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Whether `table` holds an item under `id` whose `attr` is `value`
    /// (consistent read): to recognise one's own write after a retry.
    pub(super) async fn holds(
        &self,
        table: &str,
        id_attr: &str,
        id: &str,
        attr: &str,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(table)
            .key(id_attr, s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(got.item.as_ref().and_then(|i| i.get(attr)).and_then(|v| v.as_b().ok()).is_some_and(|b| b.as_ref() == value))
    }

    /// Consistent batch read of whole items by primary key, retrying
    /// unprocessed keys. Answers items per table.
    pub(super) async fn batch_get(
        &self,
        mut want: HashMap<String, Vec<Item>>,
    ) -> Result<HashMap<String, Vec<Item>>, StoreError> {
        let mut out: HashMap<String, Vec<Item>> = HashMap::new();
        let mut backoff = Backoff::new(5, std::time::Duration::from_millis(20));
        while want.values().any(|v| !v.is_empty()) {
            // BatchGetItem takes at most 100 keys a call.
            let mut budget = 100usize;
            let mut request = HashMap::new();
            for (table, keys) in want.iter_mut() {
                if budget == 0 || keys.is_empty() {
                    continue;
                }
                let take: Vec<Item> = keys.drain(..keys.len().min(budget)).collect();
                budget -= take.len();
                let ka = build(KeysAndAttributes::builder().set_keys(Some(take)).consistent_read(true).build())?;
                request.insert(table.clone(), ka);
            }
            let resp = self.client.batch_get_item().set_request_items(Some(request)).send().await.map_err(classify)?;
            for (table, items) in resp.responses.unwrap_or_default() {
                out.entry(table).or_default().extend(items);
            }
            if let Some(unprocessed) = resp.unprocessed_keys.filter(|u| !u.is_empty()) {
                if !backoff.wait().await {
                    let f = Fault::new(FaultKind::Throttled, "DynamoDB BatchGetItem kept unprocessed keys");
                    return Err(StoreError::Unavailable(f));
                }
                for (table, ka) in unprocessed {
                    want.entry(table).or_default().extend(ka.keys);
                }
            }
        }
        Ok(out)
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
