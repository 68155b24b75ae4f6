//! The one replica mechanism: the copies of each tenant's, key's and
//! token's item in the replicas table ([`schema::REPLICAS`]), so that one
//! tenant is read over [`TENANT_REPLICAS`] partition keys and one key or
//! one token over [`RECORD_REPLICAS`] (12,000 consistent reads a second)
//! instead of one (3,000).
//!
//! The rules, each kept by the write that changes an item:
//! - **Created with the item**, in the same transaction (tenants with their
//!   root token, keys, tokens).
//! - **Changed with the item** ([`DynamoStore::update_replicated`]): a
//!   tenant's settings and quota, a key's changes (names, overrides,
//!   versions, a retired version destroyed) and its deletion go to the item
//!   and to every replica in one transaction, under the same condition.
//! - **A revocation** writes the revoked item over every replica before it
//!   answers. A revoked token never becomes live again, so an overwrite can
//!   only bring a copy closer to its item.
//! - **Reads** ([`ReadStore::fetch`]) take each tenant, key and token from
//!   one replica at random ([`next_replica`]); the usage counters (`retrievals`, `uses`,
//!   `lastUsedAt`), which the usage function keeps on the items only, come
//!   from the items themselves when a request asks for them
//!   ([`Fetch::usage`]).
//! - **Kept on the item only**, besides the counters: an issuer's `issued`
//!   mark (and the earlier layout's child set), which revocation reads from
//!   the item it updates, and the expiry notice's claim, which cleanup
//!   reads from the notice index. No request reads them from a replica.
//! - **Items of the earlier layout** (without replicas) are read from
//!   themselves, a round trip more, and changed alone — under the condition
//!   that they still have no replicas — until `ibyok admin migrate` makes
//!   their replicas ([`DynamoStore::make_replicas`]). A tenant of that
//!   layout may still have copies in the tenants table itself: nothing reads
//!   them, and the migration deletes them once it has made its replicas.
//! - **Deleted with the item**: a key's in its deletion's transaction, a
//!   token's by cleanup in the batch that purges it (and they carry its
//!   TTL, the backstop). A revocation that races cleanup can write copies
//!   of a purged token again; they are revoked, and the TTL sweeps them.

use super::*;

/// The records that have replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Record {
    Tenant,
    Key,
    Token,
}

impl Record {
    pub(super) const ALL: [Record; 3] = [Record::Tenant, Record::Key, Record::Token];

    pub(super) fn id_attr(self) -> &'static str {
        match self {
            Record::Tenant => TENANT_ID,
            Record::Key => KEY_ID,
            Record::Token => TOKEN_ID,
        }
    }

    pub(super) fn table(self, tables: &Tables) -> &str {
        match self {
            Record::Tenant => &tables.tenants,
            Record::Key => &tables.keys,
            Record::Token => &tables.tokens,
        }
    }

    /// How many replicas each record of this kind has.
    pub(super) fn replicas(self) -> u32 {
        match self {
            Record::Tenant => TENANT_REPLICAS,
            Record::Key | Record::Token => RECORD_REPLICAS,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Record::Tenant => "tenant",
            Record::Key => "key",
            Record::Token => "token",
        }
    }
}

/// Replica `r`'s key: `tenant#<tenantId>#<r>`, `key#<keyId>#<r>` or
/// `token#<tokenId>#<r>`.
pub(super) fn replica_id(record: Record, id: &str, r: u32) -> String {
    format!("{}#{id}#{r}", record.prefix())
}

/// The item as its replica `r`: the same attributes under the replica's key.
pub(super) fn replica_item(record: Record, main: &Item, id: &str, r: u32) -> Item {
    let mut item = main.clone();
    item.insert(REPLICA_ID.into(), s(replica_id(record, id, r)));
    item
}

/// The replica a read takes of a `record`: at random. (Taking them in turn
/// per process was tried: a request whose fetches alternate between two
/// records kept meeting each record on the same two replicas.)
pub(super) fn next_replica(record: Record) -> u32 {
    rand::random::<u32>() % record.replicas()
}

/// Which record a replica copies, from its key.
pub(super) fn replica_record(item: &Item) -> Option<Record> {
    let id = opt_s(item, REPLICA_ID)?;
    Record::ALL.into_iter().find(|r| id.starts_with(r.prefix()) && id[r.prefix().len()..].starts_with('#'))
}

pub(super) fn key_of(id: String) -> Item {
    Item::from([(REPLICA_ID.to_owned(), s(id))])
}

impl DynamoStore {
    /// Puts of the item's replicas, for the transaction that writes the item.
    pub(super) fn replica_puts(
        &self,
        record: Record,
        main: &Item,
        id: &str,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        (0..record.replicas())
            .map(|r| {
                let put = build(
                    Put::builder()
                        .table_name(&self.tables.replicas)
                        .set_item(Some(replica_item(record, main, id, r)))
                        .build(),
                )?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect()
    }

    /// Deletes of the item's replicas, for the transaction that deletes it.
    pub(super) fn replica_deletes(&self, record: Record, id: &str) -> Result<Vec<TransactWriteItem>, StoreError> {
        (0..record.replicas())
            .map(|r| {
                let delete = build(
                    Delete::builder()
                        .table_name(&self.tables.replicas)
                        .set_key(Some(key_of(replica_id(record, id, r))))
                        .build(),
                )?;
                Ok(TransactWriteItem::builder().delete(delete).build())
            })
            .collect()
    }

    /// One change to an item and to each of its replicas, with `extra`
    /// writes (its audit event), in one transaction. `update(table, key)`
    /// builds the change for the item (`table`, keyed by `key`) and for each
    /// replica alike; its condition must fail on a missing item. A failed
    /// condition on the item or on `extra[i]` becomes `on_fail(0)` or
    /// `on_fail(1 + i)`.
    ///
    /// An item of the earlier layout (no replicas) is changed alone, under
    /// the condition that it still has none; if they were made meanwhile,
    /// the change goes again with them.
    pub(super) async fn update_replicated(
        &self,
        record: Record,
        id: &str,
        update: impl Fn(&str, Item) -> Result<Update, StoreError>,
        extra: Vec<TransactWriteItem>,
        on_fail: impl Fn(usize) -> StoreError,
    ) -> Result<(), StoreError> {
        let main = update(record.table(&self.tables), Item::from([(record.id_attr().to_owned(), s(id))]))?;
        let mut head = vec![TransactWriteItem::builder().update(main).build()];
        head.extend(extra);
        let first_replica = head.len();
        for _ in 0..3 {
            let mut with = head.clone();
            for r in 0..record.replicas() {
                let u = update(&self.tables.replicas, key_of(replica_id(record, id, r)))?;
                with.push(TransactWriteItem::builder().update(u).build());
            }
            match self.client.transact_write_items().set_transact_items(Some(with)).send().await.map_err(classify_tx) {
                Ok(_) => return Ok(()),
                Err(Ok(i)) if i < first_replica => return Err(on_fail(i)),
                Err(Ok(_)) => {}
                Err(Err(e)) => return Err(e),
            }
            // A replica failed its condition: an item of the earlier layout.
            let mut alone = head.clone();
            for r in 0..record.replicas() {
                let check = build(
                    ConditionCheck::builder()
                        .table_name(&self.tables.replicas)
                        .set_key(Some(key_of(replica_id(record, id, r))))
                        .condition_expression(format!("attribute_not_exists({REPLICA_ID})"))
                        .build(),
                )?;
                alone.push(TransactWriteItem::builder().condition_check(check).build());
            }
            match self.client.transact_write_items().set_transact_items(Some(alone)).send().await.map_err(classify_tx) {
                Ok(_) => return Ok(()),
                Err(Ok(i)) if i < first_replica => return Err(on_fail(i)),
                // Its replicas were made meanwhile: again, with them.
                Err(Ok(_)) => continue,
                Err(Err(e)) => return Err(e),
            }
        }
        let f = Fault::new(FaultKind::Throttled, "an item's replicas kept changing under its update");
        Err(StoreError::Unavailable(f))
    }

    /// Writes `main` (a token's item as it now stands, revoked) over each of
    /// its replicas: one batch write. Only a revocation uses it; see the
    /// module's rules for why an overwrite is safe there.
    pub(super) async fn overwrite_replicas(&self, record: Record, main: &Item, id: &str) -> Result<(), StoreError> {
        if opt_s(main, record.id_attr()).as_deref() != Some(id) {
            return Err(bad(record.id_attr()));
        }
        let puts = (0..record.replicas())
            .map(|r| {
                let put = build(PutRequest::builder().set_item(Some(replica_item(record, main, id, r))).build())?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.batch_write(&self.tables.replicas, puts).await
    }

    /// Reads the records `wanted` from their items (consistently).
    pub(super) async fn read_items(&self, wanted: &[(Record, &str)]) -> Result<Vec<(Record, Item)>, StoreError> {
        let mut req: HashMap<String, Vec<Item>> = HashMap::new();
        for (rec, id) in wanted {
            let keys = req.entry(rec.table(&self.tables).to_owned()).or_default();
            let key = Item::from([(rec.id_attr().to_owned(), s(*id))]);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let mut got = self.batch_get(req).await?;
        let mut out = Vec::new();
        for rec in Record::ALL {
            for item in got.remove(rec.table(&self.tables)).unwrap_or_default() {
                out.push((rec, item));
            }
        }
        Ok(out)
    }

    /// Makes the replicas of an item of the earlier layout (`seen`, as
    /// read), if it has none. The copies go in one transaction with a check
    /// that the item is still as read — for a key, the same `updatedAt`
    /// (every change but a retired version's destruction moves it) and the
    /// same presence of a previous version; for a token, the same presence of
    /// `revokedAt` — so that no copy of an older state lands after a change
    /// or a deletion. If it changed meanwhile, it is read again. `true`:
    /// made here; `false`: made by another writer, or the item is gone.
    pub(super) async fn make_replicas(&self, record: Record, id: &str, seen: Item) -> Result<bool, StoreError> {
        let mut seen = seen;
        for _ in 0..5 {
            let mut check = ConditionCheck::builder()
                .table_name(record.table(&self.tables))
                .key(record.id_attr(), s(id))
                .expression_attribute_names("#id", record.id_attr());
            let presence =
                |attr: &str| if seen.contains_key(attr) { "attribute_exists" } else { "attribute_not_exists" };
            check = match record {
                Record::Key => check
                    .condition_expression(format!(
                        "attribute_exists(#id) AND updatedAt = :u AND {}(#prev)",
                        presence(PREVIOUS)
                    ))
                    .expression_attribute_names("#prev", PREVIOUS)
                    .expression_attribute_values(":u", seen.get("updatedAt").cloned().ok_or_else(|| bad("updatedAt"))?),
                Record::Token => check
                    .condition_expression(format!("attribute_exists(#id) AND {}(revokedAt)", presence("revokedAt"))),
                // Its settings and quota, the only attributes that change.
                Record::Tenant => {
                    let mut cond = String::from("attribute_exists(#id)");
                    for env in ["development", "staging", "production"] {
                        cond.push_str(&format!(" AND #{env} = :{env}"));
                        check = check.expression_attribute_names(format!("#{env}"), env).expression_attribute_values(
                            format!(":{env}"),
                            seen.get(env).cloned().ok_or_else(|| bad(env))?,
                        );
                    }
                    check = check.expression_attribute_names("#q", READS_PER_MONTH);
                    match seen.get(READS_PER_MONTH) {
                        Some(q) => {
                            cond.push_str(" AND #q = :q");
                            check = check.expression_attribute_values(":q", q.clone());
                        }
                        None => cond.push_str(" AND attribute_not_exists(#q)"),
                    }
                    check.condition_expression(cond)
                }
            };
            let mut items = vec![TransactWriteItem::builder().condition_check(build(check.build())?).build()];
            for r in 0..record.replicas() {
                let put = build(
                    Put::builder()
                        .table_name(&self.tables.replicas)
                        .set_item(Some(replica_item(record, &seen, id, r)))
                        .condition_expression(format!("attribute_not_exists({REPLICA_ID})"))
                        .build(),
                )?;
                items.push(TransactWriteItem::builder().put(put).build());
            }
            match self.client.transact_write_items().set_transact_items(Some(items)).send().await.map_err(classify_tx) {
                Ok(_) => return Ok(true),
                // Made meanwhile (they are made all at once).
                Err(Ok(i)) if i > 0 => return Ok(false),
                Err(Ok(_)) => {}
                Err(Err(e)) => return Err(e),
            }
            // Changed or gone since it was read: again, as it is now.
            match self.read_items(&[(record, id)]).await?.pop() {
                Some((_, item)) => seen = item,
                None => return Ok(false),
            }
        }
        let f = Fault::new(FaultKind::Throttled, "an item kept changing while its replicas were made");
        Err(StoreError::Unavailable(f))
    }

    /// Makes the replicas of every `record` (tenant, key or token) that has
    /// none (`ibyok admin migrate`). Answers how many were given them.
    pub(super) async fn replicate_earlier(&self, record: Record) -> Result<usize, StoreError> {
        let mut made = 0;
        let table = record.table(&self.tables).to_owned();
        // The records' own items (never an earlier layout's tenant copy,
        // keyed `<tenantId>#<r>`).
        let filter = "attribute_exists(#id) AND NOT contains(#id, :hash)";
        let items = self.scan_all(&table, filter, &[("#id", record.id_attr())], &[(":hash", "#")]).await?;
        for chunk in items.chunks(100) {
            let ids: Vec<String> = chunk.iter().filter_map(|i| opt_s(i, record.id_attr())).collect();
            let keys = ids.iter().map(|id| key_of(replica_id(record, id, 0))).collect();
            let got = self.batch_get(HashMap::from([(self.tables.replicas.clone(), keys)])).await?;
            let have: std::collections::HashSet<String> =
                got.get(&self.tables.replicas).into_iter().flatten().filter_map(|i| opt_s(i, REPLICA_ID)).collect();
            for (id, item) in ids.iter().zip(chunk) {
                if !have.contains(&replica_id(record, id, 0)) && self.make_replicas(record, id, item.clone()).await? {
                    made += 1;
                }
            }
        }
        Ok(made)
    }
}
