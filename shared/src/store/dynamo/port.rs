//! The storage port over DynamoDB.

use super::*;

/// A version change as an update: its expression, its condition (the
/// tenant, and the versions as they were read), names and values.
type UpdateParts = (String, String, Vec<(String, String)>, Vec<(String, AttributeValue)>);

fn versions_update(
    key: &KeyId,
    expect: &VersionStamp,
    current: Option<&KeyVersion>,
    previous: &Slot,
    pending: &Slot,
    last_version: u64,
) -> UpdateParts {
    let mut sets = vec![format!("{LAST_VERSION} = :last"), "updatedAt = :updatedAt".to_owned()];
    let mut removes = Vec::new();
    let mut values = vec![(":last".to_owned(), n(last_version))];
    let mut names = vec![("#ver".to_owned(), VERSION.to_owned())];
    let mut set_all = |attrs: &mut dyn Iterator<Item = (String, AttributeValue)>, prefix: &str| {
        for (i, (k, v)) in attrs.enumerate() {
            let (name, value) = (format!("#{prefix}{i}"), format!(":{prefix}{i}"));
            sets.push(format!("{name} = {value}"));
            names.push((name, k));
            values.push((value, v));
        }
    };
    if let Some(c) = current {
        set_all(&mut current_attributes(c).into_iter(), "c");
    }
    match previous {
        Slot::Keep => {}
        Slot::Remove => removes.extend(["#prev", RETIRE_SHARD, RETIRE_AT]),
        Slot::Set(p) => set_all(&mut previous_attributes(key, p).into_iter(), "p"),
    }
    match pending {
        Slot::Keep => {}
        Slot::Remove => removes.push("#pend"),
        Slot::Set(p) => set_all(&mut std::iter::once((PENDING.to_owned(), version_value(p))), "q"),
    }
    let mut update = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        update.push_str(&format!(" REMOVE {}", removes.join(", ")));
    }
    // Items written before versions have neither number: version 1.
    let mut condition = String::from("tenantId = :tenant");
    condition.push_str(match expect.current {
        1 => " AND (attribute_not_exists(#ver) OR #ver = :ever)",
        _ => " AND #ver = :ever",
    });
    condition.push_str(match expect.last {
        1 => " AND (attribute_not_exists(lastVersion) OR lastVersion = :elast)",
        _ => " AND lastVersion = :elast",
    });
    values.push((":ever".to_owned(), n(expect.current)));
    values.push((":elast".to_owned(), n(expect.last)));
    match expect.pending {
        Some(p) => {
            condition.push_str(" AND #pend.#ver = :epend");
            values.push((":epend".to_owned(), n(p)));
        }
        None => condition.push_str(" AND attribute_not_exists(#pend)"),
    }
    names.push(("#pend".to_owned(), PENDING.to_owned()));
    if matches!(previous, Slot::Remove) {
        names.push(("#prev".to_owned(), PREVIOUS.to_owned()));
    }
    (update, condition, names, values)
}

/// A token's or key's item (or replica) into `out`.
fn add_record(out: &mut Fetched, rec: Record, item: &Item) -> Result<(), StoreError> {
    match rec {
        Record::Token => {
            let t = token_from(item)?;
            out.tokens.insert(t.token_id.clone(), t);
        }
        Record::Key => {
            let k = key_from(item)?;
            out.keys.insert(k.key_id.clone(), k);
        }
    }
    Ok(())
}

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

    /// Writes an audit event, once: its key is its own (time and event id),
    /// so a retry that finds it stored finds its own write.
    async fn put_event_once(&self, e: &AuditEvent) -> Result<(), StoreError> {
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

    /// One change to a tenant's item and to each of its replicas, with its
    /// audit event if any, in one transaction: all or nothing. A tenant of
    /// the earlier layout (no replicas) gains them from its item first.
    /// `NotFound` without the item.
    async fn update_tenant(
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
    async fn tenant_item_of(&self, tenant: &TenantId) -> Result<Option<Item>, StoreError> {
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

    /// Deletes an audit event by its key (taking back a read that was not
    /// served); retried by the SDK, and a missing event is fine.
    async fn delete_event(&self, e: &AuditEvent) -> Result<(), StoreError> {
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

    /// The issuers of the tokens `ids` (those that have one).
    async fn issuers_of(&self, ids: &[String]) -> Result<HashMap<String, String>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let keys = ids.iter().map(|id| Item::from([(TOKEN_ID.to_owned(), s(id))])).collect();
        let mut got = self.batch_get(HashMap::from([(self.tables.tokens.clone(), keys)])).await?;
        Ok(got
            .remove(&self.tables.tokens)
            .unwrap_or_default()
            .iter()
            .filter_map(|i| Some((opt_s(i, TOKEN_ID)?, opt_s(i, "issuedBy")?)))
            .collect())
    }

    /// The children entered under `issuer`: a consistent query of its
    /// partition of the children table, every page.
    pub(super) async fn children_of(&self, issuer: &str) -> Result<Vec<Revocable>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.tables.children)
                .key_condition_expression(format!("{ISSUER_ID} = :issuer"))
                .expression_attribute_values(":issuer", s(issuer))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            out.extend(resp.items().iter().filter_map(|i| {
                let token_id = TokenId::from_stored(opt_s(i, TOKEN_ID)?);
                Some(Revocable { token_id, expires_at: opt_ts(i, "expiresAt") })
            }));
            start = resp.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// The writes that create `token`, in one transaction with whatever
    /// the caller adds after them: the token (item 0, never over an
    /// existing id), its replicas, and with an issuer, the issuer's mark and
    /// liveness (item 1) and the child's entry under it.
    pub(super) fn token_creation(&self, token: &TokenRecord) -> Result<Vec<TransactWriteItem>, StoreError> {
        let main = token_item(token);
        let mut items = vec![self.put(&self.tables.tokens, main.clone(), Some("attribute_not_exists(tokenId)"))?];
        if let Some(parent) = &token.issued_by {
            // The issuer must be live as the child is written, and the child
            // is entered under it, in its own small item: the issuer's item
            // only gains a constant mark (`issued`) and never grows. A
            // revocation sets `revokedAt` before it reads the entries, so
            // no child can slip in between.
            let issuer = Update::builder()
                .table_name(&self.tables.tokens)
                .key(TOKEN_ID, s(parent.as_str()))
                .update_expression(format!("SET {ISSUED} = :yes"))
                .condition_expression(format!("attribute_exists({TOKEN_ID}) AND {LIVE_TOKEN}"))
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
                .expression_attribute_values(":at", n(token.created_at.millis()));
            items.push(TransactWriteItem::builder().update(build(issuer.build())?).build());
            items.push(self.put(&self.tables.children, child_item(parent.as_str(), token), None)?);
        }
        items.extend(self.replica_puts(Record::Token, &main, token.token_id.as_str())?);
        Ok(items)
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
    async fn holds(&self, table: &str, id_attr: &str, id: &str, attr: &str, value: &[u8]) -> Result<bool, StoreError> {
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

    /// Deletes one purge shard's due tokens: index queries, each followed by
    /// batch deletes of what it found.
    async fn purge_shard(&self, shard: u8, now: Timestamp) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        let mut start = None;
        loop {
            let (ids, next) = self.due_page(&self.tables.tokens, PURGE_INDEX, TOKEN_ID, shard, now, start).await?;
            report.items_read += ids.len();
            // Each token goes with its entry under its issuer (the index
            // holds keys only: the issuers come from a batch read).
            let issuers = self.issuers_of(&ids).await?;
            // A batch takes 25 writes: 4 tokens, each with its entry and
            // its replicas.
            for chunk in ids.chunks(4) {
                let mut writes: HashMap<String, Vec<WriteRequest>> = HashMap::new();
                for id in chunk {
                    let del = build(DeleteRequest::builder().key(TOKEN_ID, s(id)).build())?;
                    writes
                        .entry(self.tables.tokens.clone())
                        .or_default()
                        .push(WriteRequest::builder().delete_request(del).build());
                    for r in 0..RECORD_REPLICAS {
                        let del = build(
                            DeleteRequest::builder().set_key(Some(key_of(replica_id(Record::Token, id, r)))).build(),
                        )?;
                        writes
                            .entry(self.tables.replicas.clone())
                            .or_default()
                            .push(WriteRequest::builder().delete_request(del).build());
                    }
                    if let Some(issuer) = issuers.get(id) {
                        let del =
                            build(DeleteRequest::builder().key(ISSUER_ID, s(issuer)).key(TOKEN_ID, s(id)).build())?;
                        writes
                            .entry(self.tables.children.clone())
                            .or_default()
                            .push(WriteRequest::builder().delete_request(del).build());
                    }
                }
                let mut pending = writes;
                let mut backoff = Backoff::new(5, std::time::Duration::from_millis(20));
                loop {
                    let out = self
                        .client
                        .batch_write_item()
                        .set_request_items(Some(pending))
                        .send()
                        .await
                        .map_err(classify)?;
                    match out.unprocessed_items.filter(|u| u.values().any(|v| !v.is_empty())) {
                        None => break,
                        Some(left) if backoff.wait().await => pending = left,
                        Some(_) => {
                            let f = Fault::new(FaultKind::Throttled, "DynamoDB BatchWriteItem kept unprocessed items");
                            return Err(StoreError::Unavailable(f));
                        }
                    }
                }
                report.deleted += chunk.len();
            }
            start = next;
            if start.is_none() {
                break;
            }
        }
        Ok(report)
    }

    /// Destroys one retire shard's due previous versions: index queries,
    /// each followed by one conditional update per key found (the
    /// condition: that previous version is still the due one).
    async fn retire_shard(&self, shard: u8, now: Timestamp) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        let mut start = None;
        loop {
            let (ids, next) = self.due_page(&self.tables.keys, RETIRE_INDEX, KEY_ID, shard, now, start).await?;
            report.items_read += ids.len();
            // From the item and from each replica at once.
            let updates = ids.iter().map(|id| {
                let update = |table: &str, key: Item| {
                    build(
                        Update::builder()
                            .table_name(table)
                            .set_key(Some(key))
                            .update_expression(format!("REMOVE #prev, {RETIRE_SHARD}, {RETIRE_AT}"))
                            .expression_attribute_names("#prev", PREVIOUS)
                            .condition_expression(format!("{RETIRE_AT} <= :now"))
                            .expression_attribute_values(":now", n(now.seconds()))
                            .build(),
                    )
                };
                self.update_replicated(Record::Key, id, update, Vec::new(), |_| StoreError::NotFound)
            });
            for out in futures::future::join_all(updates).await {
                match out {
                    Ok(_) => report.deleted += 1,
                    // Replaced or deleted meanwhile: nothing due here now.
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            start = next;
            if start.is_none() {
                return Ok(report);
            }
        }
    }

    /// The ids of one notice shard's tokens whose notice is due: index
    /// queries, every page.
    async fn due_notices(&self, shard: u8, now: Timestamp) -> Result<Vec<String>, StoreError> {
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
    async fn due_page(
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
    async fn claim_notice(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
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

#[async_trait]
impl Store for DynamoStore {
    /// One batch read: each token and key from one of its replicas (from
    /// its item when the counters are wanted), the tenant's settings from
    /// one of the tenant's replicas. Records without replicas (the earlier
    /// layout, or none at all) cost a second round trip to their items.
    async fn fetch(&self, want: &Fetch) -> Result<Fetched, StoreError> {
        let mut wanted: Vec<(Record, &str)> = Vec::new();
        for w in want
            .tokens
            .iter()
            .map(|t| (Record::Token, t.as_str()))
            .chain(want.keys.iter().map(|k| (Record::Key, k.as_str())))
        {
            if !wanted.contains(&w) {
                wanted.push(w);
            }
        }
        let mut req: HashMap<String, Vec<Item>> = HashMap::new();
        let r = next_replica(RECORD_REPLICAS);
        for (rec, id) in &wanted {
            match want.usage {
                true => req
                    .entry(rec.table(&self.tables).to_owned())
                    .or_default()
                    .push(Item::from([(rec.id_attr().to_owned(), s(*id))])),
                false => req.entry(self.tables.replicas.clone()).or_default().push(key_of(replica_id(*rec, id, r))),
            }
        }
        // The tenant's settings from one of its replicas, at random.
        if let Some(t) = &want.tenant {
            let replica = tenant_replica_id(t, next_replica(TENANT_REPLICAS));
            req.insert(self.tables.tenants.clone(), vec![Item::from([(TENANT_ID.to_owned(), s(replica))])]);
        }
        let mut got = self.batch_get(req).await?;
        let mut items: Vec<(Record, Item)> = Vec::new();
        for item in got.remove(&self.tables.replicas).unwrap_or_default() {
            if let Some(rec) = replica_record(&item) {
                items.push((rec, item));
            }
        }
        for rec in [Record::Key, Record::Token] {
            items.extend(got.remove(rec.table(&self.tables)).unwrap_or_default().into_iter().map(|i| (rec, i)));
        }
        let mut out = Fetched::default();
        for (rec, item) in &items {
            add_record(&mut out, *rec, item)?;
        }
        // No replica: the earlier layout (until `ibyok admin migrate`), or
        // no such record. Its item, a round trip more.
        let missing: Vec<(Record, &str)> = wanted
            .iter()
            .filter(|(rec, id)| match rec {
                Record::Token => !out.tokens.contains_key(&TokenId::from_stored((*id).to_owned())),
                Record::Key => !out.keys.contains_key(&KeyId::from_stored((*id).to_owned())),
            })
            .copied()
            .collect();
        if !want.usage && !missing.is_empty() {
            for (rec, item) in self.read_items(&missing).await? {
                add_record(&mut out, rec, &item)?;
            }
        }
        match (got.remove(&self.tables.tenants).unwrap_or_default().first(), &want.tenant) {
            (Some(item), _) => out.tenant = Some(tenant_from(item)?),
            // No replica: a tenant of the earlier layout (until `ibyok admin
            // migrate`), or none at all. Its own item, a round trip more.
            (None, Some(tenant)) => {
                if let Some(item) = self.tenant_item_of(tenant).await? {
                    out.tenant = Some(tenant_from(&item)?);
                }
            }
            (None, None) => {}
        }
        Ok(out)
    }

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

    async fn create_key(&self, key: &KeyRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let main = key_item(key);
        let mut items = vec![
            self.put(&self.tables.keys, main.clone(), Some("attribute_not_exists(keyId)"))?,
            self.audit_put(audit)?,
        ];
        items.extend(self.replica_puts(Record::Key, &main, key.key_id.as_str())?);
        match self.transact_or(items, |_| StoreError::Conflict(Conflict::Exists)).await {
            // A retry of our own write that had already landed (the response
            // was lost): the item holds our ciphertext.
            Err(StoreError::Conflict(_))
                if self
                    .holds(
                        &self.tables.keys,
                        KEY_ID,
                        key.key_id.as_str(),
                        "ciphertext",
                        &key.current.envelope.ciphertext,
                    )
                    .await? =>
            {
                Ok(())
            }
            other => other,
        }
    }

    async fn update_key(
        &self,
        tenant: &TenantId,
        key: &KeyId,
        change: &KeyChange,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        // The same change, under the same condition, to the item and to
        // each of its replicas.
        let update = |table: &str, item_key: Item| {
            let u = Update::builder()
                .table_name(table)
                .set_key(Some(item_key))
                .expression_attribute_values(":tenant", s(tenant.as_str()))
                .expression_attribute_values(":updatedAt", n(at.millis()));
            let u = match change {
                KeyChange::Versions { expect, current, previous, pending, last_version } => {
                    let (update, condition, names, values) =
                        versions_update(key, expect, current.as_ref(), previous, pending, *last_version);
                    let mut u = u.update_expression(update).condition_expression(condition);
                    for (k, v) in names {
                        u = u.expression_attribute_names(k, v);
                    }
                    for (k, v) in values {
                        u = u.expression_attribute_values(k, v);
                    }
                    u
                }
                KeyChange::Meta { name, mode_overrides } => u
                    .condition_expression("tenantId = :tenant")
                    .update_expression("SET #name = :name, modeOverrides = :mo, updatedAt = :updatedAt")
                    .expression_attribute_names("#name", "name")
                    .expression_attribute_values(":name", s(name))
                    .expression_attribute_values(":mo", overrides_value(mode_overrides)),
            };
            build(u.build())
        };
        let changed = self.update_replicated(Record::Key, key.as_str(), update, vec![self.audit_put(audit)?], |_| {
            StoreError::NotFound
        });
        match changed.await {
            // The key is gone or another tenant's, its versions changed, or
            // this very change landed on an earlier attempt.
            Err(StoreError::NotFound) if matches!(change, KeyChange::Versions { .. }) => {
                let got = self.fetch(&Fetch { keys: vec![key.clone()], ..Fetch::default() }).await?;
                match got.keys.get(key).filter(|k| &k.tenant_id == tenant) {
                    None => Err(StoreError::NotFound),
                    Some(k) if k.shows(change) => Ok(()),
                    Some(_) => Err(StoreError::Conflict(Conflict::Changed)),
                }
            }
            other => other,
        }
    }

    async fn delete_key(&self, tenant: &TenantId, key: &KeyId, audit: &AuditEvent) -> Result<(), StoreError> {
        let delete = build(
            Delete::builder()
                .table_name(&self.tables.keys)
                .key(KEY_ID, s(key.as_str()))
                .condition_expression("tenantId = :tenant")
                .expression_attribute_values(":tenant", s(tenant.as_str()))
                .build(),
        )?;
        let mut items = vec![TransactWriteItem::builder().delete(delete).build(), self.audit_put(audit)?];
        // Its replicas with it (none, for a key of the earlier layout).
        items.extend(self.replica_deletes(Record::Key, key.as_str())?);
        match self.transact_or(items, |_| StoreError::NotFound).await {
            // Gone already: deleted by a retry of this very call whose first
            // response was lost, or by a concurrent delete. Either way it is gone.
            Err(StoreError::NotFound) => {
                let got = self.fetch(&Fetch { keys: vec![key.clone()], ..Fetch::default() }).await?;
                if got.keys.contains_key(key) {
                    Err(StoreError::NotFound)
                } else {
                    Ok(())
                }
            }
            other => other,
        }
    }

    async fn record_read(
        &self,
        _key: &KeyId,
        _token: &TokenId,
        _at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let put = self.put_event_once(audit).await;
        if let Err(StoreError::Unavailable(_)) = &put {
            // No answer: the event may have landed, for a read that will not
            // be served. It goes.
            if let Err(e) = self.delete_event(audit).await {
                tracing::warn!(error = %crate::fault::chain(&e), "could not take back a failed read");
            }
        }
        put
    }

    /// The plan's items are read (consistently) while the event is written;
    /// the event is deleted again if they no longer bear the plan out. One
    /// round trip on the common path, at the floor's cost: a read unit per
    /// item read and one write unit for the event, no transaction.
    async fn record_expected_read(
        &self,
        expect: &ExpectedRead,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let tenant = match expect.mode_requirement() {
            ModeRequirement::TenantSetting(..) => Some(expect.tenant_id.clone()),
            _ => None,
        };
        let want =
            Fetch { tokens: vec![expect.token_id.clone()], keys: vec![expect.key_id.clone()], tenant, usage: false };
        let (got, put) = tokio::join!(self.fetch(&want), self.put_event_once(audit));
        let holds = got.map(|got| {
            let modes = got.tenant.as_ref().map(|t| t.modes).unwrap_or_default();
            expect.holds(got.tokens.get(&expect.token_id), got.keys.get(&expect.key_id), &modes, at)
        });
        match (holds, put) {
            (Ok(true), Ok(())) => Ok(true),
            (Ok(false), _) => {
                // The write may have landed: nothing of the read may stay.
                self.delete_event(audit).await?;
                Ok(false)
            }
            (Ok(true), Err(e)) | (Err(e), _) => {
                // The read will not be served: its event, if it landed, goes.
                if let Err(undo) = self.delete_event(audit).await {
                    tracing::warn!(error = %crate::fault::chain(&undo), "could not take back a planned read");
                }
                Err(e)
            }
        }
    }

    async fn unrecord_read(&self, _key: &KeyId, _token: &TokenId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.delete_event(audit).await
    }

    async fn apply_usage(&self, batch: &UsageBatch, now: Timestamp) -> Result<(), StoreError> {
        self.apply_usage_batch(batch, now).await
    }

    async fn daily_usage(&self, tenant: &TenantId, from: Day, to: Day) -> Result<Vec<DailyCount>, StoreError> {
        self.daily_counts(tenant, from, to).await
    }

    async fn create_token(&self, token: &TokenRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut items = self.token_creation(token)?;
        items.push(self.audit_put(audit)?);
        let outcome = self
            .transact_or(items, |i| match i {
                0 => StoreError::Conflict(Conflict::Exists),
                _ => StoreError::Conflict(Conflict::IssuerNotLive),
            })
            .await;
        self.landed_or(token, outcome).await
    }

    async fn revoke_token(
        &self,
        tenant: &TenantId,
        target: &Revocable,
        at: Timestamp,
        revoked_grace_seconds: i64,
    ) -> Result<Vec<Revocable>, StoreError> {
        let token = &target.token_id;
        // The first revocation sets the purge second by the rule: the grace,
        // unless expiry comes first. A later revocation changes nothing.
        // With the expiry known (and checked), the purge second is set in
        // the same write; without it, the write assumes the grace ends
        // first, and the rare other case takes a second write.
        let grace_end = at.plus_seconds(revoked_grace_seconds);
        let (purge, condition) = match target.expires_at {
            Some(exp) => (grace_end.min(exp), "expiresAt = :expiry"),
            None => (grace_end, "expiresAt > :expiry"),
        };
        let first = self
            .client
            .update_item()
            .table_name(&self.tables.tokens)
            .key(TOKEN_ID, s(token.as_str()))
            .update_expression("SET revokedAt = :at, purgeAt = :purge, #ttl = :ttl")
            .condition_expression(format!("tenantId = :tenant AND attribute_not_exists(revokedAt) AND {condition}"))
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":at", n(at.millis()))
            .expression_attribute_values(":expiry", n(target.expires_at.unwrap_or(grace_end).millis()))
            .expression_attribute_values(":purge", n(purge.ceil_seconds()))
            .expression_attribute_values(":ttl", n(purge.ceil_seconds() + TTL_MARGIN_SECONDS))
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let item = match first {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(err) => {
                let old = match err.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(e)) => e.item.clone(),
                    _ => return Err(classify(err)),
                };
                // Which condition failed: from the old item, or (a server
                // that does not return it) from a consistent read.
                let old = match old {
                    Some(item) => Some(item),
                    None => self
                        .batch_get(HashMap::from([(
                            self.tables.tokens.clone(),
                            vec![Item::from([(TOKEN_ID.to_owned(), s(token.as_str()))])],
                        )]))
                        .await?
                        .remove(&self.tables.tokens)
                        .and_then(|mut v| v.pop()),
                };
                let old = old.filter(|i| opt_s(i, TENANT_ID).as_deref() == Some(tenant.as_str()));
                match old {
                    None => return Err(StoreError::NotFound),
                    Some(item) if item.contains_key("revokedAt") => item,
                    // The expiry was not the given one, or comes before the
                    // grace ends: the revocation by the record itself.
                    Some(item) => {
                        let record = token_from(&item)?;
                        let revoked = TokenRecord { revoked_at: Some(at), ..record };
                        let purge = revoked.purge_second(revoked_grace_seconds);
                        self.client
                            .update_item()
                            .table_name(&self.tables.tokens)
                            .key(TOKEN_ID, s(token.as_str()))
                            .update_expression(
                                "SET revokedAt = if_not_exists(revokedAt, :at), purgeAt = :purge, #ttl = :ttl",
                            )
                            .condition_expression("tenantId = :tenant AND attribute_not_exists(revokedAt)")
                            .expression_attribute_names("#ttl", TTL)
                            .expression_attribute_values(":at", n(at.millis()))
                            .expression_attribute_values(":purge", n(purge))
                            .expression_attribute_values(":ttl", n(purge + TTL_MARGIN_SECONDS))
                            .expression_attribute_values(":tenant", s(tenant.as_str()))
                            .return_values(ReturnValue::AllNew)
                            .send()
                            .await
                            .map_err(classify)?
                            .attributes
                            .unwrap_or_default()
                    }
                }
            }
        };
        // Read after `revokedAt` was set: every child issued before it is
        // entered; none can be issued after it. A token that never issued
        // one (no `issued` mark) has none to read.
        // Beside it, the revoked item goes over every replica: once this
        // answers, no read takes the token as live.
        let children = async {
            match item.contains_key(ISSUED) {
                true => self.children_of(token.as_str()).await,
                false => Ok(Vec::new()),
            }
        };
        let (copied, children) = tokio::join!(self.overwrite_replicas(Record::Token, &item, token.as_str()), children);
        copied?;
        let mut children = children?;
        // Items of the earlier layout list their children on themselves.
        if let Some(AttributeValue::Ss(ids)) = item.get(LEGACY_CHILDREN) {
            let listed: std::collections::HashSet<TokenId> = children.iter().map(|c| c.token_id.clone()).collect();
            children.extend(
                ids.iter()
                    .map(|id| TokenId::from_stored(id.clone()))
                    .filter(|id| !listed.contains(id))
                    .map(|token_id| Revocable { token_id, expires_at: None }),
            );
        }
        Ok(children)
    }

    async fn list_keys(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<KeyRecord>, StoreError> {
        let (items, next) = self.tenant_page(&self.tables.keys, KEY_ID, tenant, limit, cursor).await?;
        let items = items.iter().map(key_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items: items.into_iter().filter(|k| &k.tenant_id == tenant).collect(), next })
    }

    async fn list_tokens(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<TokenRecord>, StoreError> {
        let (items, next) = self.tenant_page(&self.tables.tokens, TOKEN_ID, tenant, limit, cursor).await?;
        let items = items.iter().map(token_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items: items.into_iter().filter(|t| &t.tenant_id == tenant).collect(), next })
    }

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

    async fn retire_versions(&self, now: Timestamp) -> Result<PurgeReport, StoreError> {
        // As for tokens: the shards at once.
        let shards = (0..RETIRE_SHARDS).map(|shard| self.retire_shard(shard, now));
        Ok(PurgeReport::sum(futures::future::try_join_all(shards).await?))
    }

    async fn purge_tokens(&self, now: Timestamp) -> Result<PurgeReport, StoreError> {
        // The shards are independent: all at once, so that cleanup takes the
        // round trips of one shard, not of eight.
        let shards = (0..PURGE_SHARDS).map(|shard| self.purge_shard(shard, now));
        Ok(PurgeReport::sum(futures::future::try_join_all(shards).await?))
    }

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

    async fn set_quota(&self, tenant: &TenantId, reads_per_month: Option<u64>) -> Result<(), StoreError> {
        // On the item and its replicas: reads take the quota from a replica.
        let update = |id: String| {
            let update = Update::builder()
                .table_name(&self.tables.tenants)
                .key(TENANT_ID, s(id))
                .condition_expression(format!("attribute_exists({TENANT_ID})"))
                .expression_attribute_names("#q", READS_PER_MONTH);
            let update = match reads_per_month {
                Some(q) => update.update_expression("SET #q = :q").expression_attribute_values(":q", n(q)),
                None => update.update_expression("REMOVE #q"),
            };
            build(update.build()).map(|u| TransactWriteItem::builder().update(u).build())
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
