//! Expiry notices on DynamoDB: claimed through the sparse notice index, once each.

use super::*;

impl DynamoStore {
    /// The ids of one notice shard's tokens whose notice is due: index
    /// queries, every page.
    pub(super) async fn due_notices(&self, shard: u8, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut start = None;
        loop {
            let (page, next) = self.due_page(&self.tables.tokens, NOTICE_INDEX, TOKEN_ID, shard, now, start).await?;
            ids.extend(page);
            start = next;
            if start.is_none() {
                return Ok(ids);
            }
        }
    }

    /// One page of a sparse due index (the purge, retire or notice index): the
    /// ids in `shard` due at `now`'s second, and where the next page starts.
    pub(super) async fn due_page(
        &self,
        table: &str,
        index: &str,
        id_attr: &str,
        shard: u8,
        now: Timestamp,
        start: Option<Item>,
    ) -> Result<(Vec<String>, Option<Item>), StoreError> {
        let (shard_attr, at_attr) = match index {
            PURGE_INDEX => (PURGE_SHARD, PURGE_AT),
            NOTICE_INDEX => (NOTICE_SHARD, NOTICE_AT),
            _ => (RETIRE_SHARD, RETIRE_AT),
        };
        let resp = self
            .client
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression(format!("{shard_attr} = :s AND {at_attr} <= :now"))
            .expression_attribute_values(":s", s(shard.to_string()))
            .expression_attribute_values(":now", n(now.seconds()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let ids = resp.items().iter().filter_map(|i| i.get(id_attr).and_then(|v| v.as_s().ok()).cloned()).collect();
        Ok((ids, resp.last_evaluated_key))
    }

    /// Claims one token's notice: removes its index attributes under the
    /// condition that they are still there. `false`: claimed by another run.
    pub(super) async fn claim_notice(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.tables.tokens)
            .key(TOKEN_ID, s(id))
            .update_expression(format!("REMOVE {NOTICE_SHARD}, {NOTICE_AT} SET noticedAt = :now"))
            .condition_expression(format!("attribute_exists({NOTICE_SHARD})"))
            .expression_attribute_values(":now", n(now.millis()))
            .send()
            .await;
        written(sent.map_err(classify))
    }
}

#[async_trait]
impl NoticeStore for DynamoStore {
    /// Queries the notice shards at once (reading only due entries), reads
    /// those tokens consistently, and claims each with one conditional
    /// `UpdateItem` (64 at once).
    async fn claim_expiry_notices(&self, now: Timestamp) -> Result<Vec<ExpiryNotice>, StoreError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let shards = (0..PURGE_SHARDS).map(|shard| self.due_notices(shard, now));
        let ids: Vec<String> = futures::future::try_join_all(shards).await?.into_iter().flatten().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = ids.iter().map(|id| Item::from([(TOKEN_ID.to_owned(), s(id))])).collect();
        let items = self.batch_get(HashMap::from([(self.tables.tokens.clone(), keys)])).await?;
        let tokens: Vec<TokenRecord> = items
            .get(&self.tables.tokens)
            .into_iter()
            .flatten()
            .filter(|i| i.contains_key(NOTICE_SHARD))
            .map(token_from)
            .collect::<Result<_, _>>()?;
        let claimed: Vec<Option<ExpiryNotice>> = stream::iter(tokens)
            .map(|t| async move {
                let claimed = self.claim_notice(t.token_id.as_str(), now).await?;
                let live = claimed && t.is_live(now);
                let notice = ExpiryNotice {
                    token_id: t.token_id,
                    name: t.name,
                    tenant_id: t.tenant_id,
                    expires_at: t.grant.expires_at,
                };
                Ok::<_, StoreError>(live.then_some(notice))
            })
            .buffer_unordered(64)
            .try_collect()
            .await?;
        Ok(claimed.into_iter().flatten().collect())
    }

    async fn release_expiry_notice(&self, token: &TokenId, notice_second: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.tables.tokens)
            .key(TOKEN_ID, s(token.as_str()))
            .update_expression(format!("SET {NOTICE_SHARD} = :s, {NOTICE_AT} = :at REMOVE noticedAt"))
            .condition_expression(format!("attribute_exists({TOKEN_ID})"))
            .expression_attribute_values(":s", s(purge_shard(token)))
            .expression_attribute_values(":at", n(notice_second))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}
