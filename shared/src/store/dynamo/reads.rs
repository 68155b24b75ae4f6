//! The read path on DynamoDB: one `BatchGetItem` of replicas (or items), and a read's event written beside it.

use super::*;

/// A tenant's, token's or key's item (or replica) into `out`.
pub(super) fn add_record(out: &mut Fetched, rec: Record, item: &Item) -> Result<(), StoreError> {
    match rec {
        Record::Tenant => out.tenant = Some(tenant_from(item)?),
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

#[async_trait]
impl ReadStore for DynamoStore {
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
            .chain(want.tenant.iter().map(|t| (Record::Tenant, t.as_str())))
        {
            if !wanted.contains(&w) {
                wanted.push(w);
            }
        }
        // The counters live on the items only: wanted, the tokens and keys
        // come from their items (a tenant has none: always a replica).
        let from_item = |rec: Record| want.usage && rec != Record::Tenant;
        let mut req: HashMap<String, Vec<Item>> = HashMap::new();
        for (rec, id) in &wanted {
            let (table, key) = match from_item(*rec) {
                true => (rec.table(&self.tables), Item::from([(rec.id_attr().to_owned(), s(*id))])),
                false => (self.tables.replicas.as_str(), key_of(replica_id(*rec, id, next_replica(*rec)))),
            };
            req.entry(table.to_owned()).or_default().push(key);
        }
        let mut got = self.batch_get(req).await?;
        let mut items: Vec<(Record, Item)> = Vec::new();
        for item in got.remove(&self.tables.replicas).unwrap_or_default() {
            if let Some(rec) = replica_record(&item) {
                items.push((rec, item));
            }
        }
        for rec in Record::ALL {
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
                Record::Tenant => out.tenant.is_none(),
                Record::Token => !out.tokens.contains_key(&TokenId::from_stored((*id).to_owned())),
                Record::Key => !out.keys.contains_key(&KeyId::from_stored((*id).to_owned())),
            })
            .filter(|(rec, _)| !from_item(*rec))
            .copied()
            .collect();
        if !missing.is_empty() {
            for (rec, item) in self.read_items(&missing).await? {
                add_record(&mut out, rec, &item)?;
            }
        }
        Ok(out)
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
}
