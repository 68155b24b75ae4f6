//! The audit digests on DynamoDB ([`DigestStore`]): one item per digest
//! in the digests table (`digestShard` = `<tenantId>#<shard>`, `seq`),
//! written once under a condition, listed through the keys-only by-time
//! index; and the digest run's reads of the audit table.

use super::*;
use crate::store::schema::{DIGEST_SEQ, DIGEST_SHARD, DIGEST_TIME, TIME_INDEX};

fn digest_shard_key(tenant: &TenantId, shard: u32) -> String {
    format!("{tenant}#{shard:02}")
}

/// The by-time index's sort key: `<through>#<shard>#<seq>`, zero-padded,
/// so that a tenant's digests of every shard list in one order.
fn digest_time(d: &AuditDigest) -> String {
    format!("{:015}#{:02}#{:012}", d.through.millis(), d.shard, d.seq)
}

fn digest_item(d: &AuditDigest) -> Item {
    let mut item = Item::from([
        (DIGEST_SHARD.to_owned(), s(digest_shard_key(&d.tenant_id, d.shard))),
        (DIGEST_SEQ.to_owned(), n(d.seq)),
        (TENANT_ID.to_owned(), s(d.tenant_id.as_str())),
        (DIGEST_TIME.to_owned(), s(digest_time(d))),
        ("through".to_owned(), n(d.through.millis())),
        ("statement".to_owned(), s(&d.statement)),
        ("signature".to_owned(), b(&d.signature)),
        ("index".to_owned(), b(&d.index)),
    ]);
    if let Some(e) = d.expires_at {
        item.insert(TTL.to_owned(), n(e.seconds()));
    }
    item
}

fn digest_from(item: &Item) -> Result<AuditDigest, StoreError> {
    let key = get_s(item, DIGEST_SHARD)?;
    let (tenant, shard) = key.rsplit_once('#').ok_or_else(|| bad(DIGEST_SHARD))?;
    Ok(AuditDigest {
        tenant_id: TenantId::from_stored(tenant.to_owned()),
        shard: shard.parse().map_err(|_| bad(DIGEST_SHARD))?,
        seq: get_n(item, DIGEST_SEQ)?,
        through: Timestamp::from_millis(get_n(item, "through")?),
        statement: get_s(item, "statement")?.to_owned(),
        signature: get_b(item, "signature")?.to_vec(),
        index: opt_b(item, "index").unwrap_or_default(),
        expires_at: opt_n::<i64>(item, TTL).map(|x| Timestamp::from_millis(x * 1000)),
    })
}

fn opt_b(item: &Item, k: &str) -> Option<Vec<u8>> {
    item.get(k).and_then(|v| v.as_b().ok()).map(|b| b.as_ref().to_vec())
}

#[async_trait]
impl DigestStore for DynamoStore {
    async fn digest_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        // The tenants' own items, not their earlier layout's copies (`<id>#<r>`).
        let items = self
            .scan_all(&self.tables.tenants, "NOT contains(#id, :hash)", &[("#id", TENANT_ID)], &[(":hash", "#")])
            .await?;
        items.iter().map(|i| get_s(i, TENANT_ID).map(|t| TenantId::from_stored(t.to_owned()))).collect()
    }

    async fn last_digest(&self, tenant: &TenantId, shard: u32) -> Result<Option<AuditDigest>, StoreError> {
        let resp = self
            .client
            .query()
            .table_name(&self.tables.digests)
            .key_condition_expression("#k = :k")
            .expression_attribute_names("#k", DIGEST_SHARD)
            .expression_attribute_values(":k", s(digest_shard_key(tenant, shard)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        resp.items.unwrap_or_default().first().map(digest_from).transpose()
    }

    async fn shard_events(
        &self,
        tenant: &TenantId,
        shard: u32,
        after: i64,
        through: i64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        // Event keys are `<at:015>#<id>`: those of `after < at <= through`
        // lie between the two bare times below.
        let lo = format!("{:015}", after.saturating_add(1));
        let hi = format!("{:015}", through.saturating_add(1));
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.tables.audit)
                .key_condition_expression("tenantId = :t AND eventKey BETWEEN :lo AND :hi")
                .expression_attribute_values(":t", s(format!("{tenant}#{shard:02}")))
                .expression_attribute_values(":lo", s(lo.clone()))
                .expression_attribute_values(":hi", s(hi.clone()))
                .consistent_read(true)
                .limit((limit - out.len()).min(1000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            for item in resp.items.unwrap_or_default() {
                out.push(audit_from(&item)?);
            }
            start = resp.last_evaluated_key;
            if start.is_none() || out.len() >= limit {
                return Ok(out);
            }
        }
    }

    async fn put_digest(&self, digest: &AuditDigest) -> Result<(), StoreError> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.tables.digests)
            .set_item(Some(digest_item(digest)))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", DIGEST_SHARD)
            .send()
            .await;
        match sent.map_err(classify) {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound) => Err(StoreError::Conflict(Conflict::Exists)),
            Err(e) => Err(e),
        }
    }

    /// One query of the by-time index (keys only), then the items,
    /// consistently, from the table. The cursor is the last entry listed.
    async fn list_digests(
        &self,
        tenant: &TenantId,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<AuditDigest>, StoreError> {
        let limit = limit.clamp(1, DIGESTS_PAGE_MAX);
        let start = decode_cursor(tenant, cursor)?;
        let lo = format!("{:015}", from.map_or(0, Timestamp::millis).max(0));
        let hi = format!("{:015}~", to.map_or(999_999_999_999_999, Timestamp::millis).max(0));
        let resp = self
            .client
            .query()
            .table_name(&self.tables.digests)
            .index_name(TIME_INDEX)
            .key_condition_expression("tenantId = :t AND #time BETWEEN :lo AND :hi")
            .expression_attribute_names("#time", DIGEST_TIME)
            .expression_attribute_values(":t", s(tenant.as_str()))
            .expression_attribute_values(":lo", s(lo))
            .expression_attribute_values(":hi", s(hi))
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let entries = resp.items.unwrap_or_default();
        let next = resp.last_evaluated_key.as_ref().and_then(encode_cursor);
        if entries.is_empty() {
            return Ok(Page { items: Vec::new(), next });
        }
        let keys: Vec<Item> = entries
            .iter()
            .filter_map(|e| {
                Some(Item::from([
                    (DIGEST_SHARD.to_owned(), e.get(DIGEST_SHARD)?.clone()),
                    (DIGEST_SEQ.to_owned(), e.get(DIGEST_SEQ)?.clone()),
                ]))
            })
            .collect();
        let mut got: Vec<AuditDigest> = Vec::new();
        let mut pending = Some(build(KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build())?);
        let mut backoff = Backoff::new(6, std::time::Duration::from_millis(50));
        while let Some(request) = pending.take() {
            let resp = self
                .client
                .batch_get_item()
                .request_items(&self.tables.digests, request)
                .send()
                .await
                .map_err(classify)?;
            for item in resp.responses.and_then(|mut r| r.remove(&self.tables.digests)).unwrap_or_default() {
                got.push(digest_from(&item)?);
            }
            pending = resp.unprocessed_keys.and_then(|mut u| u.remove(&self.tables.digests));
            if pending.is_some() && !backoff.wait().await {
                let f = Fault::new(FaultKind::Throttled, "DynamoDB BatchGetItem kept unprocessed keys");
                return Err(StoreError::Unavailable(f));
            }
        }
        // The index's order (a digest deleted since the query is left out).
        got.sort_by_key(|d| std::cmp::Reverse(digest_time(d)));
        Ok(Page { items: got, next })
    }
}
