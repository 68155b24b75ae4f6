//! Keys on DynamoDB: the key's item (its versions in it) and its replicas, changed in one transaction under the versions read.

use super::*;

pub(super) fn versions_update(
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

/// A version change as an update: its expression, its condition (the
/// tenant, and the versions as they were read), names and values.
type UpdateParts = (String, String, Vec<(String, String)>, Vec<(String, AttributeValue)>);

impl DynamoStore {
    /// Destroys one retire shard's due previous versions: index queries,
    /// each followed by one conditional update per key found (the
    /// condition: that previous version is still the due one).
    pub(super) async fn retire_shard(&self, shard: u8, now: Timestamp) -> Result<PurgeReport, StoreError> {
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
}

#[async_trait]
impl KeyStore for DynamoStore {
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

    async fn retire_versions(&self, now: Timestamp) -> Result<PurgeReport, StoreError> {
        // As for tokens: the shards at once.
        let shards = (0..RETIRE_SHARDS).map(|shard| self.retire_shard(shard, now));
        Ok(PurgeReport::sum(futures::future::try_join_all(shards).await?))
    }
}
