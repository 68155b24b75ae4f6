//! What reaches DynamoDB, read back raw with the SDK: no plaintext, sealed
//! envelopes that fail when moved or edited, and cleanup that reads only what
//! it deletes.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use ibyok::clock::Clock;
use ibyok::store::ReadStore;
use ibyok_tests::{Env, Req};
use serde_json::json;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

async fn scan(env: &Env, table: &str) -> Vec<Item> {
    env.dynamo.scan().table_name(table).send().await.unwrap().items.unwrap_or_default()
}

fn contains(hay: &AttributeValue, needle: &[u8]) -> bool {
    let has = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    match hay {
        AttributeValue::S(s) | AttributeValue::N(s) => has(s.as_bytes()),
        AttributeValue::B(b) => has(b.as_ref()),
        AttributeValue::L(l) => l.iter().any(|v| contains(v, needle)),
        AttributeValue::M(m) => m.values().any(|v| contains(v, needle)),
        AttributeValue::Ss(v) => v.iter().any(|s| has(s.as_bytes())),
        _ => false,
    }
}

#[tokio::test]
async fn no_stored_attribute_contains_a_plaintext_value_or_a_token() {
    let env = Env::new().await;
    let value = "sk-plaintext-canary-7f3a9c";
    let key = env.add_key(&env.root, "k", "openai", value).await;
    let rotated = "sk-rotated-canary-1b2c3d";
    env.call(Req::put(&format!("/keys/{key}/value")).token(&env.root).json(json!({"value": rotated})))
        .await
        .expect(200);
    let (_, token) = env.issue(&env.root, json!({"name": "t", "scopes": ["keys:read"]})).await;
    env.read(&token, &key, "production").await.expect(200);
    let secrets: [&str; 4] = [value, rotated, &token, &env.root];
    for table in [&env.tables.keys, &env.tables.tokens, &env.tables.tenants, &env.tables.audit, &env.tables.replicas] {
        for item in scan(&env, table).await {
            for (name, attr) in &item {
                for s in secrets {
                    assert!(!contains(attr, s.as_bytes()), "{table}.{name} holds a secret");
                    // Nor the random part of a token on its own.
                    if s.starts_with("ibyok_") {
                        assert!(!contains(attr, &s.as_bytes()[6..38]), "{table}.{name} holds a token's body");
                    }
                }
            }
        }
    }
    let item = scan(&env, &env.tables.keys).await.pop().unwrap();
    for attr in ["ciphertext", "nonce", "wrappedKey"] {
        assert!(matches!(item.get(attr), Some(AttributeValue::B(_))), "{attr}");
    }
}

async fn raw_key(env: &Env, key: &str) -> Item {
    env.dynamo
        .get_item()
        .table_name(&env.tables.keys)
        .key("keyId", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

async fn put_raw(env: &Env, item: Item) {
    env.put_key_item(item).await;
}

#[tokio::test]
async fn a_flipped_ciphertext_byte_fails_cleanly() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-tamper-target-1234").await;
    let mut item = raw_key(&env, &key).await;
    let mut ct = item["ciphertext"].as_b().unwrap().as_ref().to_vec();
    ct[0] ^= 0x01;
    item.insert("ciphertext".into(), AttributeValue::B(Blob::new(ct)));
    put_raw(&env, item).await;
    let r = env.read(&env.root, &key, "production").await.expect_error(500, "internal");
    assert!(!r.text().contains("sk-tamper"));
}

#[tokio::test]
async fn envelopes_swapped_between_keys_or_tenants_never_open() {
    let env = Env::new().await;
    let a = env.add_key(&env.root, "a", "openai", "sk-value-of-key-a-000").await;
    let b = env.add_key(&env.root, "b", "openai", "sk-value-of-key-b-111").await;
    let (_, other) = env.other_tenant().await;
    let c = env.add_key(&other, "c", "openai", "sk-value-of-key-c-222").await;
    let (ia, ib, ic) = (raw_key(&env, &a).await, raw_key(&env, &b).await, raw_key(&env, &c).await);
    let with_envelope_of = |mut target: Item, source: &Item| {
        for attr in ["ciphertext", "nonce", "wrappedKey"] {
            target.insert(attr.into(), source[attr].clone());
        }
        target
    };
    // a's item with b's envelope; b's with c's (another tenant's).
    put_raw(&env, with_envelope_of(ia.clone(), &ib)).await;
    put_raw(&env, with_envelope_of(ib.clone(), &ic)).await;
    for k in [&a, &b] {
        let r = env.read(&env.root, k, "production").await.expect_error(500, "internal");
        assert!(!r.text().contains("sk-value-of"), "{}", r.text());
    }
    // Only the ciphertext swapped, the wrapped key kept: still refused.
    let mut mixed = ia.clone();
    mixed.insert("ciphertext".into(), ib["ciphertext"].clone());
    put_raw(&env, mixed).await;
    env.read(&env.root, &a, "production").await.expect_error(500, "internal");
    // Editing the tenant attribute moves the key out of its owner's reach, and
    // into the other tenant's it still does not open.
    let (other_tenant, other_root) = {
        let listed = env.call(Req::get("/keys").token(&other)).await.expect(200);
        assert_eq!(listed.body["keys"].as_array().unwrap().len(), 1);
        (ic["tenantId"].clone(), other.clone())
    };
    let mut moved = ib.clone();
    moved.insert("tenantId".into(), other_tenant);
    put_raw(&env, moved).await;
    env.read(&env.root, &b, "production").await.expect_error(404, "not_found");
    let r = env.read(&other_root, &b, "production").await;
    assert!(r.status == 404 || r.status == 500, "{}", r.text());
    assert!(!r.text().contains("sk-value-of"));
    // The untouched key still reads.
    assert_eq!(env.read(&other, &c, "production").await.expect(200).body["value"], "sk-value-of-key-c-222");
}

#[tokio::test]
async fn cleanup_deletes_expired_and_long_revoked_tokens_reading_only_those() {
    let env = Env::new().await;
    let mut expiring = Vec::new();
    for i in 0..5 {
        expiring.push(
            env.issue(&env.root, json!({"name": format!("e{i}"), "scopes": ["keys:read"], "expiresIn": 60})).await.0,
        );
    }
    let mut live = Vec::new();
    for i in 0..7 {
        live.push(env.issue(&env.root, json!({"name": format!("l{i}"), "scopes": ["keys:read"]})).await.0);
    }
    let (revoked, _) = env.issue(&env.root, json!({"name": "r", "scopes": ["keys:read"]})).await;
    env.call(Req::delete(&format!("/tokens/{revoked}")).token(&env.root)).await.expect(204);
    // Not yet due: nothing read, nothing deleted.
    let report = cleanup::handler(env.dyn_store(), None, env.clock.as_ref()).await.unwrap();
    assert_eq!((report.tokens.items_read, report.tokens.deleted), (0, 0));
    env.clock.advance_seconds(120);
    let report = cleanup::handler(env.dyn_store(), None, env.clock.as_ref()).await.unwrap();
    assert_eq!((report.tokens.items_read, report.tokens.deleted), (5, 5));
    // The revoked token stays listed through its grace period, then goes.
    env.clock.advance_seconds(env.app.config.revoked_retention_seconds);
    let report = cleanup::handler(env.dyn_store(), None, env.clock.as_ref()).await.unwrap();
    assert_eq!((report.tokens.items_read, report.tokens.deleted), (1, 1));
    let listed = env.call(Req::get("/tokens?limit=100").token(&env.root)).await.expect(200);
    let ids: Vec<String> =
        listed.body["tokens"].as_array().unwrap().iter().map(|t| t["tokenId"].as_str().unwrap().to_owned()).collect();
    for id in &live {
        assert!(ids.contains(id));
    }
    for id in expiring.iter().chain([&revoked]) {
        assert!(!ids.contains(id));
    }
    assert_eq!(ids.len(), live.len() + 1, "the live tokens and the root");
    // Each stored token carries a TTL backstop after its purge time.
    let tokens = scan(&env, &env.tables.tokens).await;
    for t in tokens {
        let ttl: i64 = t["ttl"].as_n().unwrap().parse().unwrap();
        let purge: i64 = t["purgeAt"].as_n().unwrap().parse().unwrap();
        assert!(ttl > purge && purge > env.clock.now().seconds() - 1);
    }
}

#[tokio::test]
async fn the_operator_bootstrap_writes_a_root_token_that_works() {
    let env = Env::new().await;
    let b = ibyok::bootstrap::create_tenant(env.dyn_store(), "acme", env.clock.now()).await.unwrap();
    let token = b.token.expose_token();
    let listed = env.call(Req::get("/tokens").token(token)).await.expect(200);
    let root = &listed.body["tokens"][0];
    assert_eq!(root["issuedBy"], json!(null));
    assert_eq!(root["scopes"].as_array().unwrap().len(), ibyok::token::Scope::ALL.len(), "every scope");
    let created = ibyok::clock::Timestamp::parse_rfc3339(root["createdAt"].as_str().unwrap()).unwrap();
    let expires = ibyok::clock::Timestamp::parse_rfc3339(root["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires.seconds() - created.seconds(), 31_536_000);
    // Its tenant is its own.
    assert!(env.call(Req::get("/keys").token(token)).await.expect(200).body["keys"].as_array().unwrap().is_empty());
    let _ = env.store.fetch(&Default::default()).await.unwrap();
}

fn put_req(key: &str, body: serde_json::Value) -> Req {
    Req::put(&format!("/keys/{key}/value")).json(body)
}

async fn read_version(env: &Env, token: &str, key: &str, version: &str) -> ibyok_tests::Resp {
    env.call(Req::get(&format!("/external/keys/{key}/value?env=production&version={version}")).token(token)).await
}

/// An envelope's attributes inside a version map (`previous`, `pending`) or
/// at the top level (the current version).
fn envelope_in(item: &Item, slot: Option<&str>) -> Item {
    let source = match slot {
        None => item.clone(),
        Some(s) => item[s].as_m().unwrap().clone(),
    };
    ["ciphertext", "nonce", "wrappedKey"].iter().map(|a| ((*a).to_owned(), source[*a].clone())).collect()
}

fn with_envelope(mut item: Item, slot: Option<&str>, envelope: &Item) -> Item {
    match slot {
        None => item.extend(envelope.clone()),
        Some(s) => {
            let mut m = item[s].as_m().unwrap().clone();
            m.extend(envelope.clone());
            item.insert(s.to_owned(), AttributeValue::M(m));
        }
    }
    item
}

#[tokio::test]
async fn envelopes_moved_between_versions_keys_or_tenants_never_open() {
    let env = Env::new().await;
    // k: v1 previous (an hour), v2 current, v3 pending.
    let k = env.add_key(&env.root, "k", "openai", "sk-version-one-00000").await;
    let body = json!({"value": "sk-version-two-00000", "previousValidFor": 3600});
    env.call(put_req(&k, body).token(&env.root)).await.expect(200);
    let body = json!({"value": "sk-version-three-000", "stage": "pending"});
    env.call(put_req(&k, body).token(&env.root)).await.expect(200);
    for (which, value) in [("previous", "one"), ("current", "two"), ("pending", "three"), ("1", "one"), ("3", "three")]
    {
        let r = read_version(&env, &env.root, &k, which).await.expect(200);
        assert!(r.body["value"].as_str().unwrap().contains(value), "{which}");
    }
    let original = raw_key(&env, &k).await;
    let (prev, cur, pend) = (
        envelope_in(&original, Some("previous")),
        envelope_in(&original, None),
        envelope_in(&original, Some("pending")),
    );
    // Each version's envelope moved into another version's place.
    let moves: [(&str, Option<&str>, &Item); 6] = [
        ("current", None, &prev),
        ("current", None, &pend),
        ("previous", Some("previous"), &cur),
        ("previous", Some("previous"), &pend),
        ("pending", Some("pending"), &cur),
        ("pending", Some("pending"), &prev),
    ];
    for (which, slot, envelope) in moves {
        put_raw(&env, with_envelope(original.clone(), slot, envelope)).await;
        let r = read_version(&env, &env.root, &k, which).await.expect_error(500, "internal");
        assert!(!r.text().contains("sk-version"), "{which}: {}", r.text());
    }
    // A version renumbered in place: its number is bound too.
    let mut renumbered = original.clone();
    renumbered.insert("version".into(), AttributeValue::N("4".into()));
    renumbered.insert("lastVersion".into(), AttributeValue::N("4".into()));
    put_raw(&env, renumbered).await;
    read_version(&env, &env.root, &k, "current").await.expect_error(500, "internal");
    // Another key's (or tenant's) version 2 in this key's version 2.
    put_raw(&env, original.clone()).await;
    let other = env.add_key(&env.root, "o", "openai", "sk-other-key-one-0000").await;
    env.call(put_req(&other, json!({"value": "sk-other-key-two-0000"})).token(&env.root)).await.expect(200);
    let (_, stranger) = env.other_tenant().await;
    let foreign = env.add_key(&stranger, "f", "openai", "sk-other-tenant-one-00").await;
    env.call(put_req(&foreign, json!({"value": "sk-other-tenant-two-00"})).token(&stranger)).await.expect(200);
    for source in [&other, &foreign] {
        let moved = envelope_in(&raw_key(&env, source).await, None);
        put_raw(&env, with_envelope(original.clone(), None, &moved)).await;
        let r = read_version(&env, &env.root, &k, "2").await.expect_error(500, "internal");
        assert!(!r.text().contains("sk-other"), "{}", r.text());
    }
    // Put back, every version reads again.
    put_raw(&env, original).await;
    assert_eq!(read_version(&env, &env.root, &k, "2").await.expect(200).body["value"], "sk-version-two-00000");
}

#[tokio::test]
async fn an_item_written_before_versions_reads_as_version_one() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "legacy", "openai", "sk-written-before-versions").await;
    // The earlier layout, attribute for attribute: no version, no
    // versionCreatedAt, no lastVersion.
    let item = raw_key(&env, &key).await;
    let earlier =
        "keyId tenantId name llmType preview modeOverrides createdAt updatedAt retrievals ciphertext nonce wrappedKey";
    let legacy: Item = earlier.split(' ').map(|a| (a.to_owned(), item[a].clone())).collect();
    env.dynamo
        .delete_item()
        .table_name(&env.tables.keys)
        .key("keyId", AttributeValue::S(key.clone()))
        .send()
        .await
        .unwrap();
    put_raw(&env, legacy.clone()).await;
    assert_eq!(raw_key(&env, &key).await, legacy);
    let meta = env.call(Req::get(&format!("/keys/{key}")).token(&env.root)).await.expect(200);
    assert_eq!(meta.body["version"], 1);
    for which in ["current", "1"] {
        let r = read_version(&env, &env.root, &key, which).await.expect(200);
        assert_eq!(
            (r.body["value"].as_str(), r.body["version"].as_u64()),
            (Some("sk-written-before-versions"), Some(1))
        );
    }
    let versions = env.call(Req::get(&format!("/keys/{key}/versions")).token(&env.root)).await.expect(200);
    assert_eq!(versions.body["versions"].as_array().unwrap().len(), 1);
    assert_eq!(versions.body["versions"][0]["stage"], "current");
    // It rotates like any other key: v2 pending, promoted with v1 kept.
    env.call(put_req(&key, json!({"value": "sk-after-versions-2", "stage": "pending"})).token(&env.root))
        .await
        .expect(200);
    let promote = Req::post(&format!("/keys/{key}/promote")).token(&env.root).json(json!({"previousValidFor": 60}));
    assert_eq!(env.call(promote).await.expect(200).body["version"], 2);
    assert_eq!(read_version(&env, &env.root, &key, "current").await.expect(200).body["value"], "sk-after-versions-2");
    let r = read_version(&env, &env.root, &key, "previous").await.expect(200);
    assert_eq!((r.body["value"].as_str(), r.body["version"].as_u64()), (Some("sk-written-before-versions"), Some(1)));
}

#[tokio::test]
async fn cleanup_destroys_a_retired_versions_ciphertext_and_wrapped_key() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-soon-retired-value").await;
    let v1 = envelope_in(&raw_key(&env, &key).await, None);
    env.call(put_req(&key, json!({"value": "sk-the-next-value-22", "previousValidFor": 60})).token(&env.root))
        .await
        .expect(200);
    // A pending version replaced by another is destroyed by that write.
    env.call(put_req(&key, json!({"value": "sk-replaced-pending-3", "stage": "pending"})).token(&env.root))
        .await
        .expect(200);
    let v3 = envelope_in(&raw_key(&env, &key).await, Some("pending"));
    env.call(put_req(&key, json!({"value": "sk-kept-pending-4444", "stage": "pending"})).token(&env.root))
        .await
        .expect(200);
    let gone = |item: &Item, envelope: &Item| {
        let (ct, wk) =
            (envelope["ciphertext"].as_b().unwrap().as_ref(), envelope["wrappedKey"].as_b().unwrap().as_ref());
        !item.values().any(|attr| contains(attr, ct) || contains(attr, wk))
    };
    let item = raw_key(&env, &key).await;
    assert!(gone(&item, &v3), "the replaced pending version is gone from the item");
    assert!(!gone(&item, &v1), "v1 is previous, in its window");
    // Within the window: nothing due.
    env.clock.advance_seconds(30);
    let report = cleanup::handler(env.dyn_store(), None, env.clock.as_ref()).await.unwrap();
    assert_eq!((report.versions.items_read, report.versions.deleted), (0, 0));
    read_version(&env, &env.root, &key, "previous").await.expect(200);
    // Past it: no longer readable at once, listed as retired until cleanup.
    env.clock.advance_seconds(31);
    read_version(&env, &env.root, &key, "previous").await.expect_error(404, "not_found");
    read_version(&env, &env.root, &key, "1").await.expect_error(404, "not_found");
    let listed = env.call(Req::get(&format!("/keys/{key}/versions")).token(&env.root)).await.expect(200);
    let stages: Vec<_> = listed.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].clone(), v["stage"].clone()))
        .collect();
    assert_eq!(stages, vec![(json!(4), json!("pending")), (json!(2), json!("current")), (json!(1), json!("retired"))]);
    let report = cleanup::handler(env.dyn_store(), None, env.clock.as_ref()).await.unwrap();
    assert_eq!((report.versions.items_read, report.versions.deleted), (1, 1));
    let item = raw_key(&env, &key).await;
    assert!(gone(&item, &v1), "the retired version's ciphertext and wrapped key are gone");
    for replica in scan(&env, &env.tables.replicas).await {
        assert!(gone(&replica, &v1), "and from every replica");
    }
    for attr in ["previous", "retireShard", "retireAt"] {
        assert!(!item.contains_key(attr), "{attr}");
    }
    let listed = env.call(Req::get(&format!("/keys/{key}/versions")).token(&env.root)).await.expect(200);
    assert_eq!(listed.body["versions"].as_array().unwrap().len(), 2);
    // Deleting the key destroys every version.
    env.call(Req::delete(&format!("/keys/{key}")).token(&env.root)).await.expect(204);
    for table in [&env.tables.keys, &env.tables.replicas] {
        let left = scan(&env, table).await;
        assert!(left.iter().all(|i| i.get("keyId") != Some(&AttributeValue::S(key.clone()))), "{table}");
    }
}

/// Every envelope an item holds: the top-level one and one per version map.
fn envelopes(item: &Item) -> usize {
    let maps = ["previous", "pending"].iter().filter(|m| item.get(**m).is_some_and(|v| v.as_m().is_ok())).count();
    usize::from(item.contains_key("ciphertext")) + maps
}

#[tokio::test]
async fn a_key_item_holds_at_most_three_envelopes_however_often_it_rotates() {
    let env = Env::new().await;
    let value = |i: usize| format!("sk-{i:04}-{}", "x".repeat(8184));
    let key = env.add_key(&env.root, "big", "openai", &value(0)).await;
    let one = ibyok_tests::item_bytes(&raw_key(&env, &key).await);
    let mut staged = Vec::new();
    let mut promoted = Vec::new();
    for cycle in 1..=12 {
        let stage = json!({"value": value(2 * cycle - 1), "stage": "pending"});
        env.call(put_req(&key, stage).token(&env.root)).await.expect(200);
        // A second pending version replaces the first.
        let replaced = json!({"value": value(2 * cycle), "stage": "pending"});
        env.call(put_req(&key, replaced).token(&env.root)).await.expect(200);
        let item = raw_key(&env, &key).await;
        assert!(envelopes(&item) <= 3, "cycle {cycle}");
        staged.push(ibyok_tests::item_bytes(&item));
        let promote =
            Req::post(&format!("/keys/{key}/promote")).token(&env.root).json(json!({"previousValidFor": 3600}));
        env.call(promote).await.expect(200);
        let item = raw_key(&env, &key).await;
        assert_eq!(envelopes(&item), 2, "cycle {cycle}: current and previous");
        promoted.push(ibyok_tests::item_bytes(&item));
    }
    println!("key item with 8 KiB values: {one} bytes with one version; {staged:?} with three; {promoted:?} with two");
    let spread = |v: &[usize]| v.iter().max().unwrap() - v.iter().min().unwrap();
    // Only the version numbers' digits may grow (by a byte or two).
    assert!(spread(&staged[1..]) <= 8 && spread(&promoted[1..]) <= 8, "{staged:?} {promoted:?}");
    assert!(*staged.iter().max().unwrap() < 3 * one + 1024, "three versions cost about three values");
    assert_eq!(versions_listed(&env, &key).await, 2);
}

async fn versions_listed(env: &Env, key: &str) -> usize {
    let r = env.call(Req::get(&format!("/keys/{key}/versions")).token(&env.root)).await.expect(200);
    r.body["versions"].as_array().unwrap().len()
}
