//! Tokens on DynamoDB: the token's item and replicas, the children table for revocation, and purging through the sparse purge index.

use super::*;

impl DynamoStore {
    /// The issuers of the tokens `ids` (those that have one).
    pub(super) async fn issuers_of(&self, ids: &[String]) -> Result<HashMap<String, String>, StoreError> {
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

    /// Deletes one purge shard's due tokens: index queries, each followed by
    /// batch deletes of what it found.
    pub(super) async fn purge_shard(&self, shard: u8, now: Timestamp) -> Result<PurgeReport, StoreError> {
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
                    for r in 0..Record::Token.replicas() {
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
}

#[async_trait]
impl TokenStore for DynamoStore {
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

    async fn purge_tokens(&self, now: Timestamp) -> Result<PurgeReport, StoreError> {
        // The shards are independent: all at once, so that cleanup takes the
        // round trips of one shard, not of eight.
        let shards = (0..PURGE_SHARDS).map(|shard| self.purge_shard(shard, now));
        Ok(PurgeReport::sum(futures::future::try_join_all(shards).await?))
    }
}
