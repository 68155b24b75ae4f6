//! Limits on DynamoDB: a token's per-minute counter (the limits table) and the tenant's sharded monthly quota counter.

use super::*;

#[async_trait]
impl LimitStore for DynamoStore {
    /// One `UpdateItem` of a ~60-byte item (one write unit, whether its
    /// condition holds or not): `ADD` under the condition that the count has
    /// not passed the limit yet, so the count stops at `limit + 1` and the
    /// one request that takes it there is the minute's first refusal. The
    /// SDK may retry it after a lost answer: a retry counts twice, which
    /// errs on the strict side (one request fewer that minute), never lets
    /// one more through.
    async fn count_request(&self, token: &TokenId, minute: i64, limit: u32) -> Result<RateCount, StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.tables.limits)
            .key(COUNTER_ID, s(rate_counter_id(token, minute)))
            .update_expression("ADD #n :one SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(#n) OR #n <= :limit")
            .expression_attribute_names("#n", "n")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            // Swept a few minutes after its minute ends.
            .expression_attribute_values(":ttl", n((minute + 5) * 60))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match sent {
            Ok(out) => {
                let count: u64 = out.attributes.as_ref().and_then(|a| opt_n(a, "n")).ok_or_else(|| bad("n"))?;
                Ok(match u32::try_from(count) {
                    Ok(c) if c <= limit => RateCount::Within { count: c },
                    _ => RateCount::FirstOver,
                })
            }
            Err(e) => match classify(e) {
                // The condition failed: the minute's count has passed the limit.
                StoreError::NotFound => Ok(RateCount::Over),
                e => Err(e),
            },
        }
    }

    async fn set_quota(&self, tenant: &TenantId, reads_per_month: Option<u64>) -> Result<(), StoreError> {
        // On the item and its replicas: reads take the quota from a replica.
        let update = |table: &str, key: Item| {
            let update = Update::builder()
                .table_name(table)
                .set_key(Some(key))
                .condition_expression(format!("attribute_exists({TENANT_ID})"))
                .expression_attribute_names("#q", READS_PER_MONTH);
            let update = match reads_per_month {
                Some(q) => update.update_expression("SET #q = :q").expression_attribute_values(":q", n(q)),
                None => update.update_expression("REMOVE #q"),
            };
            build(update.build())
        };
        self.update_tenant(tenant, update, None).await
    }

    /// One `UpdateItem` of a small item (one write unit) while the quota is
    /// far from reached: `ADD` under the condition that the shard's count is
    /// below its share. A quota is spread over up to 8 shards (one per
    /// 10,000 reads of quota, [`quota_shares`]), each its own item and
    /// partition, so a tenant's counted reads are not bounded by one
    /// partition's 1,000 write units a second. A read starts at a random
    /// shard and tries the next ones only when a shard is full: the sum of
    /// the shards never passes the quota, and a read is refused only when
    /// every shard was full as it tried it.
    async fn count_quota_read(&self, tenant: &TenantId, month: Month, quota: u64) -> Result<bool, StoreError> {
        use rand::Rng;
        let shares = quota_shares(quota);
        let first = rand::thread_rng().gen_range(0..shares.len());
        for i in (0..shares.len()).map(|j| (first + j) % shares.len()) {
            if shares[i] == 0 {
                continue;
            }
            let sent = self
                .client
                .update_item()
                .table_name(&self.tables.limits)
                .key(COUNTER_ID, s(quota_counter_id(tenant, month, i)))
                .update_expression("ADD #n :one SET #ttl = :ttl")
                .condition_expression("attribute_not_exists(#n) OR #n < :share")
                .expression_attribute_names("#n", "n")
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":share", n(shares[i]))
                // Kept a year past its month, then swept by TTL.
                .expression_attribute_values(":ttl", n(month.next().start().seconds() + QUOTA_KEPT_SECONDS))
                .send()
                .await;
            if written(sent.map_err(classify))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Takes one off any shard that has a count (the sum is what counts).
    async fn uncount_quota_read(&self, tenant: &TenantId, month: Month) -> Result<(), StoreError> {
        for i in 0..QUOTA_SHARDS {
            let sent = self
                .client
                .update_item()
                .table_name(&self.tables.limits)
                .key(COUNTER_ID, s(quota_counter_id(tenant, month, i)))
                .update_expression("ADD #n :minus")
                .condition_expression("#n > :zero")
                .expression_attribute_names("#n", "n")
                .expression_attribute_values(":minus", n(-1))
                .expression_attribute_values(":zero", n(0))
                .send()
                .await;
            if written(sent.map_err(classify))? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// One consistent `BatchGetItem` of every shard: their sum.
    async fn quota_used(&self, tenant: &TenantId, month: Month) -> Result<u64, StoreError> {
        let keys =
            (0..QUOTA_SHARDS).map(|i| Item::from([(COUNTER_ID.to_owned(), s(quota_counter_id(tenant, month, i)))]));
        let got = self.batch_get(HashMap::from([(self.tables.limits.clone(), keys.collect())])).await?;
        Ok(got.get(&self.tables.limits).into_iter().flatten().filter_map(|i| opt_n::<u64>(i, "n")).sum())
    }
}
