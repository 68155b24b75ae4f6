//! The data model at scale, on the DynamoDB adapter: no item grows with what
//! its token issued, revocation still reaches every descendant (10,000 of
//! them, and children issued while it runs), and items of the earlier
//! layout keep working.

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use ibyok::clock::Clock;
use ibyok::store::dynamo::token_item;
use ibyok::store::TokenRecord;
use ibyok::token::{ParsedToken, Scope, Scopes};
use ibyok_tests::{item_bytes, raw_token, Env, Req};
use serde_json::json;
use std::collections::HashMap;
use std::time::Instant;

type Item = HashMap<String, AttributeValue>;

async fn revoked(env: &Env, id: &str) -> bool {
    raw_token(env, id).await.is_some_and(|i| i.contains_key("revokedAt"))
}

/// A token issued by `issuer`, as `POST /tokens` would store it.
fn child_of(env: &Env, issuer: &TokenRecord) -> TokenRecord {
    let parsed = ParsedToken::generate();
    let mut ancestors = issuer.ancestors.clone();
    ancestors.push(issuer.token_id.clone());
    TokenRecord {
        token_id: parsed.id().clone(),
        tenant_id: issuer.tenant_id.clone(),
        verifier: parsed.verifier().to_vec(),
        name: "seeded".into(),
        grant: ibyok::token::Grant {
            scopes: [Scope::KeysRead].into_iter().collect::<Scopes>(),
            expires_at: env.clock.now().plus_seconds(86_400),
            key_ids: None,
            allowed_cidrs: None,
            rate_limit: None,
        },
        created_at: env.clock.now(),
        issued_by: Some(issuer.token_id.clone()),
        ancestors,
        revoked_at: None,
        last_used_at: None,
        uses: 0,
        identity_id: None,
        member_id: None,
    }
}

async fn record(env: &Env, id: &str) -> TokenRecord {
    ibyok::store::dynamo::token_from(&raw_token(env, id).await.unwrap()).unwrap()
}

/// Writes items 25 at a time (seeding, not the service's path).
async fn batch_put(env: &Env, table: &str, items: Vec<Item>) {
    for chunk in items.chunks(25) {
        let writes: Vec<WriteRequest> = chunk
            .iter()
            .map(|i| {
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(i.clone())).build().unwrap())
                    .build()
            })
            .collect();
        let mut pending = HashMap::from([(table.to_owned(), writes)]);
        loop {
            let out = env.dynamo.batch_write_item().set_request_items(Some(pending)).send().await.unwrap();
            match out.unprocessed_items.filter(|u| u.values().any(|v| !v.is_empty())) {
                Some(left) => pending = left,
                None => break,
            }
        }
    }
}

/// A child's entry under its issuer, as issuing writes it.
fn edge(issuer: &TokenRecord, child: &TokenRecord) -> Item {
    Item::from([
        ("issuerId".to_owned(), AttributeValue::S(issuer.token_id.to_string())),
        ("tokenId".to_owned(), AttributeValue::S(child.token_id.to_string())),
        ("expiresAt".to_owned(), AttributeValue::N(child.grant.expires_at.millis().to_string())),
    ])
}

/// The mark issuing leaves on an issuer's item.
fn issued(mut item: Item) -> Item {
    item.insert("issued".to_owned(), AttributeValue::Bool(true));
    item
}

#[tokio::test]
async fn an_issuers_item_does_not_grow_with_what_it_issued() {
    let env = Env::new().await;
    let (issuer_id, issuer) =
        env.issue(&env.root, json!({"name": "ci", "scopes": ["tokens:write", "keys:read"], "expiresIn": 86400})).await;
    let before = item_bytes(&raw_token(&env, &issuer_id).await.unwrap());
    let mut sizes = Vec::new();
    for batch in 0..4 {
        for _ in 0..50 {
            env.issue(&issuer, json!({"name": "job", "scopes": ["keys:read"], "expiresIn": 60})).await;
        }
        // The jobs' tokens expire; cleanup runs between batches.
        env.clock.advance_seconds(61);
        let report = cleanup::handler(env.store.as_ref(), None, env.clock.as_ref()).await.unwrap();
        assert_eq!(report.tokens.deleted, 50, "batch {batch}");
        sizes.push(item_bytes(&raw_token(&env, &issuer_id).await.unwrap()));
    }
    println!("issuer item: {before} bytes before, {sizes:?} after each 50 children");
    // Its first child marks it (`issued`, constant); then it never grows.
    assert_eq!(sizes[0], before + "issued".len() + 1, "only the constant mark");
    assert!(sizes.iter().all(|s| *s == sizes[0]), "the issuer's item never grows: {before} → {sizes:?}");
    let entries = env.dynamo.scan().table_name(&env.tables.children).send().await.unwrap().count();
    assert_eq!(entries, 1, "cleanup deleted each child's entry with the child (the issuer's own stays)");
}

/// Children issued while their issuer is being revoked either fail (401) or
/// are revoked with it: none is left live.
#[tokio::test]
async fn no_child_slips_in_while_its_issuer_is_revoked() {
    let env = Env::new().await;
    for attempt in 0..5 {
        let (issuer_id, issuer) =
            env.issue(&env.root, json!({"name": "p", "scopes": ["tokens:write", "keys:read"]})).await;
        let issue = |i: usize| {
            let env = &env;
            let issuer = issuer.clone();
            async move {
                tokio::time::sleep(std::time::Duration::from_millis((i % 8) as u64 * 3)).await;
                env.call(Req::post("/tokens").token(&issuer).json(json!({"name": "c", "scopes": ["keys:read"]}))).await
            }
        };
        let revoke = async {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            env.call(Req::delete(&format!("/tokens/{issuer_id}")).token(&env.root)).await.expect(204);
        };
        let (issued, ()) = tokio::join!(futures::future::join_all((0..24).map(issue)), revoke);
        let mut created = 0;
        for r in issued {
            match r.status {
                201 => {
                    created += 1;
                    let id = r.body["tokenId"].as_str().unwrap();
                    assert!(revoked(&env, id).await, "attempt {attempt}: child {id} slipped in");
                }
                401 => {}
                s => panic!("unexpected {s}: {}", r.text()),
            }
        }
        println!("attempt {attempt}: {created} of 24 children were issued before the revocation, all revoked");
    }
}

/// 10,000 live descendants (100 children with 99 children each): the revoke
/// answers within the function's timeout, and every one is refused after.
#[tokio::test]
async fn revoking_ten_thousand_descendants() {
    let env = Env::new().await;
    let (top_id, _) = env.issue(&env.root, json!({"name": "top", "scopes": ["tokens:write", "keys:read"]})).await;
    let top = record(&env, &top_id).await;
    let mut tokens = Vec::new();
    let mut edges = Vec::new();
    for _ in 0..100 {
        let child = child_of(&env, &top);
        for _ in 0..99 {
            let grandchild = child_of(&env, &child);
            edges.push(edge(&child, &grandchild));
            tokens.push(token_item(&grandchild));
        }
        edges.push(edge(&top, &child));
        tokens.push(issued(token_item(&child)));
    }
    tokens.push(issued(raw_token(&env, &top_id).await.unwrap()));
    assert_eq!(tokens.len(), 10_001);
    batch_put(&env, &env.tables.tokens, tokens).await;
    batch_put(&env, &env.tables.children, edges).await;
    let started = Instant::now();
    env.call(Req::delete(&format!("/tokens/{top_id}")).token(&env.root)).await.expect(204);
    let took = started.elapsed();
    println!("revoked 10,000 descendants in {took:?} (moto, one DynamoDB request at a time)");
    let items = {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page =
                env.dynamo.scan().table_name(&env.tables.tokens).set_exclusive_start_key(start).send().await.unwrap();
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                break out;
            }
        }
    };
    let live: Vec<_> = items
        .iter()
        .filter(|i| i.get("issuedBy").is_some() && !i.contains_key("revokedAt"))
        .filter_map(|i| i.get("tokenId").and_then(|v| v.as_s().ok()))
        .collect();
    assert!(live.is_empty(), "{} descendants still live", live.len());
}

/// An issuer written by the earlier layout (its children in a set on its own
/// item) still cascades.
#[tokio::test]
async fn the_earlier_layouts_child_sets_still_cascade() {
    let env = Env::new().await;
    let (old_id, children) = legacy_issuer(&env).await;
    env.call(Req::delete(&format!("/tokens/{old_id}")).token(&env.root)).await.expect(204);
    for c in &children {
        assert!(revoked(&env, c.token_id.as_str()).await, "legacy child {}", c.token_id);
    }
}

/// Audit events spread over the tenant's partitions; those of the earlier
/// layout (under the bare tenant id) still list, newest first, in order.
#[tokio::test]
async fn audit_spreads_over_partitions_and_keeps_the_earlier_layouts_events() {
    let env = Env::new().await;
    let old_at = env.clock.now().millis() - 1;
    let legacy = Item::from([
        ("tenantId".to_owned(), AttributeValue::S(env.tenant.to_string())),
        ("eventKey".to_owned(), AttributeValue::S(format!("{old_at:015}#legacy00001"))),
        ("at".to_owned(), AttributeValue::N(old_at.to_string())),
        ("requestId".to_owned(), AttributeValue::S("legacy".into())),
        ("action".to_owned(), AttributeValue::S("settings.update".into())),
        ("outcome".to_owned(), AttributeValue::S("ok".into())),
    ]);
    batch_put(&env, &env.tables.audit, vec![legacy]).await;
    for i in 0..40 {
        env.clock.advance_seconds(1);
        let mode = if i % 2 == 0 { "live" } else { "mock" };
        env.call(Req::put("/settings/modes").token(&env.root).json(json!({"staging": mode}))).await.expect(200);
    }
    let partitions: std::collections::HashSet<String> = env
        .dynamo
        .scan()
        .table_name(&env.tables.audit)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.get("tenantId").and_then(|v| v.as_s().ok()).cloned())
        .collect();
    assert!(partitions.len() > 10, "40 events over {} partitions", partitions.len());
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/audit?limit=7&cursor={c}"),
            None => "/audit?limit=7".to_owned(),
        };
        let page = env.call(Req::get(&path).token(&env.root)).await.expect(200);
        for e in page.body["events"].as_array().unwrap() {
            seen.push((e["at"].as_str().unwrap().to_owned(), e["requestId"].as_str().unwrap().to_owned()));
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 41, "every event once");
    assert_eq!(seen.last().unwrap().1, "legacy", "the earlier layout's event, oldest, last");
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest first");
}

/// `ibyok admin migrate` (the store's `migrate`, which the command calls):
/// items written in the earlier layout — an issuer's set of children, audit
/// events under the bare tenant id, one of them a read — are moved; nothing
/// is lost: the cascade, the audit listing and the counters read the same
/// before and after, and a second run moves nothing.
#[tokio::test]
async fn migrate_moves_the_earlier_layout_and_loses_nothing() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-migrated-000000000").await;
    let (old_id, children) = legacy_issuer(&env).await;
    let old_at = env.clock.now().millis() - 5;
    let legacy = |i: u32, action: &str| {
        let mut item = Item::from([
            ("tenantId".to_owned(), AttributeValue::S(env.tenant.to_string())),
            ("eventKey".to_owned(), AttributeValue::S(format!("{:015}#legacy{i:05}", old_at + i64::from(i)))),
            ("at".to_owned(), AttributeValue::N((old_at + i64::from(i)).to_string())),
            ("requestId".to_owned(), AttributeValue::S(format!("legacy-{i}"))),
            ("action".to_owned(), AttributeValue::S(action.into())),
            ("outcome".to_owned(), AttributeValue::S("ok".into())),
        ]);
        if action == "key.read" {
            item.insert("keyId".into(), AttributeValue::S(key.clone()));
            item.insert("tokenId".into(), AttributeValue::S(ParsedToken::parse(&env.root).unwrap().id().to_string()));
        }
        item
    };
    batch_put(&env, &env.tables.audit, vec![legacy(0, "settings.update"), legacy(1, "key.read")]).await;
    env.read(&env.root, &key, "development").await.expect(200);
    // A key of the earlier layout (no replicas): read from its item, and
    // changed alone.
    let old_key = env.add_key(&env.root, "old", "openai", "sk-migrated-000000001").await;
    for r in 0..4 {
        let id = AttributeValue::S(format!("key#{old_key}#{r}"));
        env.dynamo.delete_item().table_name(&env.tables.replicas).key("replicaId", id).send().await.unwrap();
    }
    env.read(&env.root, &old_key, "development").await.expect(200);
    let renamed = Req::patch(&format!("/keys/{old_key}")).token(&env.root).json(json!({"name": "old-renamed"}));
    env.call(renamed).await.expect(200);
    let replica = format!("key#{old_key}#0");
    assert!(raw_item(&env, &env.tables.replicas, "replicaId", &replica).await.is_none(), "changed alone");

    let (audit_before, counts_before) = (listing(&env).await, counters(&env).await);

    let report = env.store.migrate().await.unwrap();
    assert_eq!((report.issuers, report.child_entries, report.events), (1, 3, 2), "{report:?}");
    let again = env.store.migrate().await.unwrap();
    assert_eq!((again.issuers, again.child_entries, again.events), (0, 0, 0), "idempotent");
    assert_eq!((report.records, again.records), (4, 0), "the old key and the three old children gain replicas, once");
    replicas_agree(&env, "key", &old_key).await;
    replicas_agree(&env, "token", &old_id).await;
    for c in &children {
        replicas_agree(&env, "token", c.token_id.as_str()).await;
    }

    let item = env
        .dynamo
        .get_item()
        .table_name(&env.tables.tokens)
        .key("tokenId", AttributeValue::S(old_id.clone()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!item.contains_key("children") && item.contains_key("issued"), "the set became entries");
    assert_eq!(listing(&env).await, audit_before, "the same events, in the same order");
    assert_eq!(counters(&env).await, counts_before, "a moved read counts nothing more");
    let bare = env
        .dynamo
        .query()
        .table_name(&env.tables.audit)
        .key_condition_expression("tenantId = :t")
        .expression_attribute_values(":t", AttributeValue::S(env.tenant.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.count, 0, "nothing left under the bare tenant id");
    env.call(Req::delete(&format!("/tokens/{old_id}")).token(&env.root)).await.expect(204);
    for c in &children {
        assert!(revoked(&env, c.token_id.as_str()).await, "migrated child {}", c.token_id);
    }
    // The old key reads from its replicas now, as renamed before them.
    let read = env.read(&env.root, &old_key, "development").await.expect(200);
    assert_eq!(read.body["name"], "old-renamed");
}

async fn listing(env: &Env) -> Vec<serde_json::Value> {
    let page = env.call(Req::get("/audit?limit=100").token(&env.root)).await.expect(200);
    page.body["events"].as_array().unwrap().iter().map(|e| e["requestId"].clone()).collect()
}

async fn counters(env: &Env) -> (serde_json::Value, serde_json::Value) {
    env.settle().await;
    let u = env.call(Req::get("/usage").token(&env.root)).await.expect(200);
    (u.body["keys"].clone(), u.body["tokens"].clone())
}

/// An issuer in the earlier layout: three children listed in a set on its
/// own item.
async fn legacy_issuer(env: &Env) -> (String, Vec<TokenRecord>) {
    let (old_id, _) = env.issue(&env.root, json!({"name": "old", "scopes": ["tokens:write", "keys:read"]})).await;
    let old = record(env, &old_id).await;
    let children: Vec<TokenRecord> = (0..3).map(|_| child_of(env, &old)).collect();
    batch_put(env, &env.tables.tokens, children.iter().map(token_item).collect()).await;
    env.dynamo
        .update_item()
        .table_name(&env.tables.tokens)
        .key("tokenId", AttributeValue::S(old_id.clone()))
        .update_expression("ADD children :c")
        .expression_attribute_values(
            ":c",
            AttributeValue::Ss(children.iter().map(|c| c.token_id.to_string()).collect()),
        )
        .send()
        .await
        .unwrap();
    (old_id, children)
}

/// One tenant's settings are read from 8 replicas of its item in the
/// replicas table (the one replica mechanism of tenants, keys and tokens),
/// written with it in one transaction. A tenant of the earlier layouts (no
/// replicas; or copies kept in the tenants table itself) is read from its
/// item and changed alone until `ibyok admin migrate` makes its replicas and
/// deletes the old copies: written old, migrated, read back.
#[tokio::test]
async fn tenant_settings_spread_over_replicas_and_the_earlier_layout_still_reads() {
    let env = Env::new().await;
    let tenant = env.tenant.to_string();
    let get = |table: String, attr: &'static str, id: String| {
        let dynamo = env.dynamo.clone();
        async move {
            let got = dynamo
                .get_item()
                .table_name(&table)
                .key(attr, AttributeValue::S(id))
                .consistent_read(true)
                .send()
                .await
                .unwrap();
            got.item
        }
    };
    // Each replica's value of `attr` (`None`: no replica).
    let replicas = |attr: &'static str| {
        let (table, tenant) = (env.tables.replicas.clone(), tenant.clone());
        async move {
            let mut out = Vec::new();
            for r in 0..8 {
                let item = get(table.clone(), "replicaId", format!("tenant#{tenant}#{r}")).await;
                out.push(item.and_then(|i| i.get(attr).cloned()));
            }
            out
        }
    };
    let live = Some(AttributeValue::S("live".into()));
    env.call(Req::put("/settings/modes").token(&env.root).json(json!({"staging": "live"}))).await.expect(200);
    assert_eq!(replicas("staging").await, vec![live.clone(); 8], "every replica changed with the item");

    // The earlier layout: no replicas, and copies in the tenants table
    // itself (`<tenantId>#<r>`), which nothing reads any more.
    let item = get(env.tables.tenants.clone(), "tenantId", tenant.clone()).await.unwrap();
    for r in 0..8 {
        env.dynamo
            .delete_item()
            .table_name(&env.tables.replicas)
            .key("replicaId", AttributeValue::S(format!("tenant#{tenant}#{r}")))
            .send()
            .await
            .unwrap();
        let mut copy = item.clone();
        copy.insert("tenantId".into(), AttributeValue::S(format!("{tenant}#{r}")));
        env.dynamo.put_item().table_name(&env.tables.tenants).set_item(Some(copy)).send().await.unwrap();
    }
    let modes = env.call(Req::get("/settings/modes").token(&env.root)).await.expect(200);
    assert_eq!(modes.body["staging"], "live", "read from the item itself");
    let key = env.add_key(&env.root, "k", "openai", "sk-replicas-00000000").await;
    let r = env.read(&env.root, &key, "staging").await.expect(200);
    assert_eq!(r.body["modeInfo"]["effectiveMode"], "live");
    // A change goes to the item alone (the one rule for an item without
    // replicas), and reads follow it.
    env.call(Req::put("/settings/modes").token(&env.root).json(json!({"development": "live"}))).await.expect(200);
    assert_eq!(replicas("development").await, vec![None; 8], "no replica made by a change");
    let r = env.read(&env.root, &key, "development").await.expect(200);
    assert_eq!(r.body["modeInfo"]["effectiveMode"], "live", "the change read from the item");

    let report = env.store.migrate().await.unwrap();
    assert_eq!((report.tenants, report.tenant_copies), (1, 8), "{report:?}");
    assert_eq!(replicas("staging").await, vec![live.clone(); 8]);
    assert_eq!(replicas("development").await, vec![live; 8], "the replicas made from the item as it stands");
    for r in 0..8 {
        let copy = get(env.tables.tenants.clone(), "tenantId", format!("{tenant}#{r}")).await;
        assert!(copy.is_none(), "the old copy {r} deleted");
    }
    let again = env.store.migrate().await.unwrap();
    assert_eq!((again.tenants, again.tenant_copies), (0, 0), "idempotent");
    let r = env.read(&env.root, &key, "development").await.expect(200);
    assert_eq!(r.body["modeInfo"]["effectiveMode"], "live");
    let modes = env.call(Req::get("/settings/modes").token(&env.root)).await.expect(200);
    assert_eq!((modes.body["development"].as_str(), modes.body["staging"].as_str()), (Some("live"), Some("live")));
}

/// The item under `id` in `table` (keyed by `attr`), consistently.
async fn raw_item(env: &Env, table: &str, attr: &str, id: &str) -> Option<Item> {
    let got = env
        .dynamo
        .get_item()
        .table_name(table)
        .key(attr, AttributeValue::S(id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    got.item
}

/// Each of the record's four replicas holds what its item holds (aside from
/// what only the item keeps, which no read takes from a replica); none is
/// left when the item is gone.
async fn replicas_agree(env: &Env, record: &str, id: &str) {
    let (table, attr) = match record {
        "key" => (&env.tables.keys, "keyId"),
        _ => (&env.tables.tokens, "tokenId"),
    };
    let strip = |mut i: Item| {
        // What only the item keeps: the counters, the issuer's mark and the
        // earlier layout's child set (revocation reads them from the item),
        // the expiry notice's claim (cleanup's).
        for a in [
            "replicaId",
            "retrievals",
            "uses",
            "lastUsedAt",
            "issued",
            "children",
            "noticeShard",
            "noticeAt",
            "noticedAt",
        ] {
            i.remove(a);
        }
        i
    };
    let main = raw_item(env, table, attr, id).await.map(strip);
    for r in 0..4 {
        let replica = raw_item(env, &env.tables.replicas, "replicaId", &format!("{record}#{id}#{r}")).await;
        assert_eq!(replica.map(strip), main, "{record} {id}: replica {r} is its item");
    }
}

/// Every write that changes a key or a token reaches each of its replicas
/// (read straight from the replicas table): created, renamed, rotated with
/// a previous version, that version destroyed by cleanup (its bytes gone
/// from every copy), revoked, deleted, purged.
#[tokio::test]
async fn every_write_reaches_every_replica() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-replicated-value-0001").await;
    replicas_agree(&env, "key", &key).await;
    env.call(Req::patch(&format!("/keys/{key}")).token(&env.root).json(json!({"name": "renamed"}))).await.expect(200);
    replicas_agree(&env, "key", &key).await;
    let old = raw_item(&env, &env.tables.keys, "keyId", &key).await.unwrap()["ciphertext"].clone();
    env.call(
        Req::put(&format!("/keys/{key}/value"))
            .token(&env.root)
            .json(json!({"value": "sk-replicated-value-0002", "previousValidFor": 60})),
    )
    .await
    .expect(200);
    replicas_agree(&env, "key", &key).await;
    let replica = raw_item(&env, &env.tables.replicas, "replicaId", &format!("key#{key}#0")).await.unwrap();
    assert!(replica.contains_key("previous"), "the previous version is on the replicas too");
    env.clock.advance_seconds(61);
    let report = cleanup::handler(env.store.as_ref(), None, env.clock.as_ref()).await.unwrap();
    assert_eq!(report.versions.deleted, 1);
    replicas_agree(&env, "key", &key).await;
    let all = env.dynamo.scan().table_name(&env.tables.replicas).consistent_read(true).send().await.unwrap();
    let old = old.as_b().unwrap().as_ref().to_vec();
    for item in all.items() {
        let text = format!("{item:?}");
        assert!(!item.contains_key("previous"), "no replica keeps a destroyed version");
        assert!(
            item.values().all(|v| v.as_b().map_or(true, |b| b.as_ref() != old.as_slice())),
            "the destroyed ciphertext is on no replica: {text:.80}"
        );
    }

    let (token, secret) =
        env.issue(&env.root, json!({"name": "fleet", "scopes": ["keys:read"], "expiresIn": 3600})).await;
    replicas_agree(&env, "token", &token).await;
    env.read(&secret, &key, "development").await.expect(200);
    env.call(Req::delete(&format!("/tokens/{token}")).token(&env.root)).await.expect(204);
    replicas_agree(&env, "token", &token).await;
    let replica = raw_item(&env, &env.tables.replicas, "replicaId", &format!("token#{token}#3")).await.unwrap();
    assert!(replica.contains_key("revokedAt"), "revoked on every replica before the revoke answered");
    // Every read after the revocation is refused, whichever replica it takes.
    for _ in 0..8 {
        env.read(&secret, &key, "development").await.expect(401);
    }
    env.call(Req::delete(&format!("/keys/{key}")).token(&env.root)).await.expect(204);
    replicas_agree(&env, "key", &key).await;
    env.clock.advance_seconds(3601);
    cleanup::handler(env.store.as_ref(), None, env.clock.as_ref()).await.unwrap();
    replicas_agree(&env, "token", &token).await;
    assert!(raw_item(&env, &env.tables.tokens, "tokenId", &token).await.is_none(), "purged");
}
