//! The counters ([`crate::usage`]) on DynamoDB: a batch of the audit stream
//! applied in transactions that move its checkpoint, and the daily counts
//! read back.

use super::*;
use crate::usage::{Count, DailyCount, Day, SeqNo, Subject as UsageSubject, Tally, UsageBatch, DAILY_RETENTION_DAYS};

/// A transaction's items (100), less the checkpoint.
const RUN_ITEMS: usize = 99;
/// Daily counts stay a little past the days served.
const DAILY_TTL_DAYS: i64 = DAILY_RETENTION_DAYS + 2;
/// A checkpoint outlives the stream's 24-hour retention.
const CHECKPOINT_TTL_SECONDS: i64 = 2 * 24 * 3600;

/// What one item of a usage transaction counts on.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Checkpoint,
    Key(KeyId),
    Token(TokenId),
    Daily,
}

fn daily_key(day: Day, subject: &UsageSubject) -> String {
    match subject {
        UsageSubject::Key(k) => format!("{day}#k#{k}"),
        UsageSubject::Token(t) => format!("{day}#t#{t}"),
    }
}

fn daily_from(item: &Item) -> Option<DailyCount> {
    let key = opt_s(item, USAGE_KEY)?;
    let mut parts = key.splitn(3, '#');
    let day = Day::parse(parts.next()?)?;
    let subject = match (parts.next()?, parts.next()?) {
        ("k", id) => UsageSubject::Key(KeyId::from_stored(id.to_owned())),
        ("t", id) => UsageSubject::Token(TokenId::from_stored(id.to_owned())),
        _ => return None,
    };
    let reads: i64 = opt_n(item, "readCount")?;
    Some(DailyCount { day, subject, reads: u64::try_from(reads).unwrap_or(0) })
}

impl DynamoStore {
    fn count_update(
        &self,
        table: &str,
        id_attr: &str,
        id: &str,
        counter: &str,
        c: &Count,
    ) -> Result<Update, StoreError> {
        let mut update = Update::builder()
            .table_name(table)
            .key(id_attr, s(id))
            .condition_expression(format!("attribute_exists({id_attr})"))
            .expression_attribute_values(":n", n(c.n));
        update = match c.last_at {
            Some(at) => update
                .update_expression(format!("ADD {counter} :n SET lastUsedAt = :at"))
                .expression_attribute_values(":at", n(at.millis())),
            None => update.update_expression(format!("ADD {counter} :n")),
        };
        build(update.build())
    }

    /// The items of one run: its checkpoint first, then what it counts.
    fn run_items(
        &self,
        batch_id: &str,
        prev: Option<&SeqNo>,
        up_to: &SeqNo,
        tally: &Tally,
        now: Timestamp,
    ) -> Result<Vec<(Target, TransactWriteItem)>, StoreError> {
        let mut checkpoint = Update::builder()
            .table_name(&self.tables.usage)
            .key(TENANT_ID, s(USAGE_CHECKPOINTS))
            .key(USAGE_KEY, s(batch_id))
            .update_expression("SET upTo = :to, #ttl = :ttl")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":to", s(&up_to.0))
            .expression_attribute_values(":ttl", n(now.seconds() + CHECKPOINT_TTL_SECONDS));
        checkpoint = match prev {
            None => checkpoint.condition_expression("attribute_not_exists(upTo)"),
            Some(p) => checkpoint.condition_expression("upTo = :prev").expression_attribute_values(":prev", s(&p.0)),
        };
        let mut items = vec![(Target::Checkpoint, build(checkpoint.build())?)];
        for (id, c) in tally.keys.iter().filter(|(_, c)| c.n != 0 || c.last_at.is_some()) {
            let u = self.count_update(&self.tables.keys, KEY_ID, id.as_str(), "retrievals", c)?;
            items.push((Target::Key(id.clone()), u));
        }
        for (id, c) in tally.tokens.iter().filter(|(_, c)| c.n != 0 || c.last_at.is_some()) {
            let u = self.count_update(&self.tables.tokens, TOKEN_ID, id.as_str(), "uses", c)?;
            items.push((Target::Token(id.clone()), u));
        }
        for ((tenant, day, subject), reads) in tally.daily.iter().filter(|(_, r)| **r != 0) {
            let expires = day.plus_days(DAILY_TTL_DAYS).start().seconds();
            let u = Update::builder()
                .table_name(&self.tables.usage)
                .key(TENANT_ID, s(tenant.as_str()))
                .key(USAGE_KEY, s(daily_key(*day, subject)))
                .update_expression("ADD readCount :n SET #ttl = :ttl")
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":n", n(reads))
                .expression_attribute_values(":ttl", n(expires));
            items.push((Target::Daily, build(u.build())?));
        }
        Ok(items.into_iter().map(|(t, u)| (t, TransactWriteItem::builder().update(u).build())).collect())
    }

    /// One run in one transaction. A key or token deleted meanwhile fails
    /// its condition: its counts are dropped (its daily counts stay) and the
    /// rest goes again. Conflicts and throttling are retried a few times.
    async fn apply_run(
        &self,
        batch_id: &str,
        prev: Option<&SeqNo>,
        up_to: &SeqNo,
        tally: &Tally,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut items = self.run_items(batch_id, prev, up_to, tally, now)?;
        let mut backoff = Backoff::new(6, std::time::Duration::from_millis(50));
        loop {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.iter().map(|(_, i)| i.clone()).collect()))
                // The SDK's own retries of this attempt are recognised as one.
                .client_request_token(crate::ids::random_base62(32))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            match classify_tx(err) {
                Ok(0) => {
                    // The checkpoint moved under us: a retry of an attempt
                    // that landed, or another consumer of the same batch.
                    let done = self.checkpoint(batch_id).await?;
                    if done.as_ref() == Some(up_to) {
                        return Ok(());
                    }
                    return Err(StoreError::internal(FaultKind::Data, "usage checkpoint moved by another consumer"));
                }
                Ok(i) => {
                    // A key or token gone: counted no more.
                    if matches!(items.get(i), Some((Target::Key(_) | Target::Token(_), _))) {
                        items.remove(i);
                    } else {
                        return Err(StoreError::internal(FaultKind::Data, "usage transaction: unexpected condition"));
                    }
                }
                Err(StoreError::Unavailable(f)) => {
                    if !backoff.wait().await {
                        return Err(StoreError::Unavailable(f));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn checkpoint(&self, batch_id: &str) -> Result<Option<SeqNo>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.tables.usage)
            .key(TENANT_ID, s(USAGE_CHECKPOINTS))
            .key(USAGE_KEY, s(batch_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(got.item.as_ref().and_then(|i| opt_s(i, "upTo")).map(SeqNo))
    }

    /// [`UsageStore::apply_usage`]: the batch's reads past its checkpoint, in
    /// runs of at most a transaction's items, each moving the checkpoint.
    pub(super) async fn apply_usage_batch(&self, batch: &UsageBatch, now: Timestamp) -> Result<(), StoreError> {
        if batch.reads.is_empty() {
            return Ok(());
        }
        let mut prev = self.checkpoint(&batch.id).await?;
        let fresh: Vec<_> = batch.reads.iter().filter(|r| prev.as_ref().is_none_or(|p| r.seq > *p)).cloned().collect();
        let runs = Tally::runs(&fresh, RUN_ITEMS);
        let last = runs.len().saturating_sub(1);
        for (i, (tally, end)) in runs.into_iter().enumerate() {
            let up_to = if i == last { batch.last_seq.clone() } else { end.seq.clone() };
            self.apply_run(&batch.id, prev.as_ref(), &up_to, &tally, now).await?;
            prev = Some(up_to);
        }
        Ok(())
    }

    /// [`UsageStore::daily_usage`]: one query of the tenant's partition over the
    /// days' range, every page.
    pub(super) async fn daily_counts(
        &self,
        tenant: &TenantId,
        from: Day,
        to: Day,
    ) -> Result<Vec<DailyCount>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.tables.usage)
                .key_condition_expression(format!("{TENANT_ID} = :t AND {USAGE_KEY} BETWEEN :from AND :to"))
                .expression_attribute_values(":t", s(tenant.as_str()))
                .expression_attribute_values(":from", s(format!("{from}#")))
                .expression_attribute_values(":to", s(format!("{to}#~")))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            out.extend(resp.items().iter().filter_map(daily_from).filter(|d| d.reads > 0));
            start = resp.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}

#[async_trait]
impl UsageStore for DynamoStore {
    async fn apply_usage(&self, batch: &UsageBatch, now: Timestamp) -> Result<(), StoreError> {
        self.apply_usage_batch(batch, now).await
    }

    async fn daily_usage(&self, tenant: &TenantId, from: Day, to: Day) -> Result<Vec<DailyCount>, StoreError> {
        self.daily_counts(tenant, from, to).await
    }
}
