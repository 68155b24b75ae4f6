//! What reaches DynamoDB, read back raw with the SDK: no plaintext, sealed
//! envelopes that fail when moved or edited, and cleanup that reads only what
//! it deletes.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use ibyok::clock::Clock;
use ibyok::store::Store;
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
    for table in [&env.tables.keys, &env.tables.tokens, &env.tables.tenants, &env.tables.audit] {
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
    env.dynamo.put_item().table_name(&env.tables.keys).set_item(Some(item)).send().await.unwrap();
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
    assert_eq!((report.items_read, report.deleted), (0, 0));
    env.clock.advance_seconds(120);
    let report = cleanup::handler(env.dyn_store(), None, env.clock.as_ref()).await.unwrap();
    assert_eq!((report.items_read, report.deleted), (5, 5));
    // The revoked token stays listed through its grace period, then goes.
    env.clock.advance_seconds(env.app.config.revoked_retention_seconds);
    let report = cleanup::handler(env.dyn_store(), None, env.clock.as_ref()).await.unwrap();
    assert_eq!((report.items_read, report.deleted), (1, 1));
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
    assert_eq!(root["scopes"].as_array().unwrap().len(), 7);
    let created = ibyok::clock::Timestamp::parse_rfc3339(root["createdAt"].as_str().unwrap()).unwrap();
    let expires = ibyok::clock::Timestamp::parse_rfc3339(root["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires.seconds() - created.seconds(), 31_536_000);
    // Its tenant is its own.
    assert!(env.call(Req::get("/keys").token(token)).await.expect(200).body["keys"].as_array().unwrap().is_empty());
    let _ = env.store.fetch(&Default::default()).await.unwrap();
}
