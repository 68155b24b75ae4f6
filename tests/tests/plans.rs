//! The planned read path against moto: a repeated read of the same token,
//! key and environment is one backend round trip, and a plan never serves
//! what the store no longer holds (settings, overrides, names, rotation,
//! versions past their window or retired, revocation, expiry, source
//! address, deletion, tampering).

use aws_sdk_dynamodb::types::AttributeValue;
use ibyok_tests::faults::{FaultProxy, Rates};
use ibyok_tests::{endpoint, Env, Req, Resp};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn mode(r: &Resp) -> (String, String) {
    let info = &r.body["modeInfo"];
    (info["effectiveMode"].as_str().unwrap().to_owned(), info["source"].as_str().unwrap().to_owned())
}

async fn usage(env: &Env, token_id: &str, key: &str) -> (u64, u64) {
    env.settle().await;
    let u = env.call(Req::get("/usage").token(&env.root)).await.expect(200);
    let find = |list: &str, field: &str, id: &str| {
        u.body[list].as_array().unwrap().iter().find(|x| x[field] == json!(id)).unwrap().clone()
    };
    (
        find("keys", "keyId", key)["retrievals"].as_u64().unwrap(),
        find("tokens", "tokenId", token_id)["uses"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn a_repeated_read_is_one_backend_request_plus_the_decrypt() {
    let none =
        Rates { throttle: 0.0, error_before: 0.0, error_after: 0.0, slow: 0.0, drop_before: 0.0, drop_after: 0.0 };
    let proxy = FaultProxy::start(&endpoint(), none, 1, Duration::ZERO).await;
    let timeouts = aws_config::timeout::TimeoutConfig::builder().build();
    let env = Env::builder().through(&proxy.url, timeouts).build().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-counted-requests-0").await;
    let requests = || proxy.counts.requests.load(Ordering::SeqCst);
    let mut sent = Vec::new();
    for e in ["development", "development", "development", "production", "production", "production"] {
        env.clock.advance_seconds(1);
        let before = requests();
        env.read(&env.root, &key, e).await.expect(200);
        sent.push(requests() - before);
    }
    // Full path: BatchGetItem, then the event's PutItem (and the Decrypt,
    // live). Planned: the BatchGetItem, the PutItem (and the Decrypt, live)
    // all at once: one round trip. No counter is written by a read.
    assert_eq!(sent, vec![2, 2, 2, 3, 3, 3]);
    let audit = env.call(Req::get("/audit?limit=6").token(&env.root)).await.expect(200);
    let modes: Vec<_> = audit.body["events"].as_array().unwrap().iter().map(|e| e["effectiveMode"].clone()).collect();
    assert_eq!(modes, vec![json!("live"), json!("live"), json!("live"), json!("mock"), json!("mock"), json!("mock")]);
}

#[tokio::test]
async fn a_plan_never_outlives_what_it_assumed() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "anthropic", "sk-ant-first-value-00").await;
    let (tid, t) = env.issue(&env.root, json!({"name": "reader", "scopes": ["keys:read"]})).await;
    let mut ok = 0;
    let mut read = async |e: &str| {
        env.clock.advance_seconds(1);
        let r = env.read(&t, &key, e).await;
        if r.status == 200 {
            ok += 1;
        }
        r
    };
    // Tenant setting: development is mock.
    for _ in 0..2 {
        let r = read("development").await.expect(200);
        assert_eq!(mode(&r), ("mock".into(), "tenant_setting".into()));
    }
    // The tenant setting changes.
    env.call(Req::put("/settings/modes").token(&env.root).json(json!({"development": "live"}))).await.expect(200);
    let r = read("development").await.expect(200);
    assert_eq!(mode(&r), ("live".into(), "tenant_setting".into()));
    assert_eq!(r.body["value"], "sk-ant-first-value-00");
    // A key override appears, then the key is renamed.
    let path = format!("/keys/{key}");
    let patch = json!({"modeOverrides": {"development": "mock"}});
    env.call(Req::patch(&path).token(&env.root).json(patch)).await.expect(200);
    let r = read("development").await.expect(200);
    assert_eq!(mode(&r), ("mock".into(), "key_override".into()));
    read("development").await.expect(200);
    env.call(Req::patch(&path).token(&env.root).json(json!({"name": "renamed"}))).await.expect(200);
    let r = read("development").await.expect(200);
    assert_eq!(r.body["name"], "renamed");
    // The override goes: the tenant setting decides again.
    let patch = json!({"modeOverrides": {"development": null}});
    env.call(Req::patch(&path).token(&env.root).json(patch)).await.expect(200);
    let r = read("development").await.expect(200);
    assert_eq!(mode(&r), ("live".into(), "tenant_setting".into()));
    // Rotation: the planned envelope is no longer the stored one.
    for _ in 0..2 {
        assert_eq!(read("production").await.expect(200).body["value"], "sk-ant-first-value-00");
    }
    let rotate = Req::put(&format!("/keys/{key}/value")).token(&env.root).json(json!({"value": "sk-ant-second-value"}));
    env.call(rotate).await.expect(200);
    for _ in 0..2 {
        assert_eq!(read("production").await.expect(200).body["value"], "sk-ant-second-value");
    }
    // Revocation is instant.
    env.clock.advance_seconds(1);
    env.call(Req::delete(&format!("/tokens/{tid}")).token(&env.root)).await.expect(204);
    read("production").await.expect_error(401, "unauthorized");
    read("development").await.expect_error(401, "unauthorized");
    let ok_reads = ok;
    assert_eq!(ok_reads, 11);
    assert_eq!(usage(&env, &tid, &key).await, (11, 11), "every successful read counted once");
    let audit = env.call(Req::get("/audit?limit=3").token(&env.root)).await.expect(200);
    let actions: Vec<_> = audit.body["events"].as_array().unwrap().iter().map(|e| e["action"].clone()).collect();
    assert_eq!(actions, vec![json!("auth.denied"), json!("auth.denied"), json!("token.revoke")]);
}

#[tokio::test]
async fn expiry_and_source_addresses_are_checked_on_every_read() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-bound-token-value").await;
    let body = json!({"name": "bound", "scopes": ["keys:read"], "expiresIn": 600, "allowedCidrs": ["203.0.113.0/24"]});
    let (_, t) = env.issue(&env.root, body).await;
    let get = |ip: &str| Req::get(&format!("/external/keys/{key}/value?env=production")).token(&t).from_ip(ip);
    for _ in 0..2 {
        env.call(get("203.0.113.7")).await.expect(200);
    }
    env.call(get("198.51.100.1")).await.expect_error(401, "unauthorized");
    env.call(get("203.0.113.8")).await.expect(200);
    env.clock.advance_seconds(601);
    env.call(get("203.0.113.7")).await.expect_error(401, "unauthorized");
    let audit = env.call(Req::get("/audit?limit=1").token(&env.root)).await.expect(200);
    assert_eq!(audit.body["events"][0]["action"], "auth.denied", "the expired token's read is audited");
}

#[tokio::test]
async fn a_tampered_or_deleted_key_is_caught_whatever_the_plan() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-planned-then-tampered").await;
    for _ in 0..2 {
        env.read(&env.root, &key, "production").await.expect(200);
    }
    let raw = |k: &str| env.dynamo.get_item().table_name(&env.tables.keys).key("keyId", AttributeValue::S(k.into()));
    let mut item = raw(&key).consistent_read(true).send().await.unwrap().item.unwrap();
    let mut ct = item["ciphertext"].as_b().unwrap().as_ref().to_vec();
    ct[0] ^= 0x01;
    item.insert("ciphertext".into(), AttributeValue::B(ct.into()));
    env.put_key_item(item).await;
    let r = env.read(&env.root, &key, "production").await.expect_error(500, "internal");
    assert!(!r.text().contains("sk-planned"));
    env.call(Req::delete(&format!("/keys/{key}")).token(&env.root)).await.expect(204);
    env.read(&env.root, &key, "production").await.expect_error(404, "not_found");
    env.read(&env.root, &key, "development").await.expect_error(404, "not_found");
}

fn read_version(t: &str, key: &str, version: &str) -> Req {
    Req::get(&format!("/external/keys/{key}/value?env=production&version={version}")).token(t)
}

fn rotate(key: &str, body: serde_json::Value) -> Req {
    Req::put(&format!("/keys/{key}/value")).json(body)
}

#[tokio::test]
async fn a_planned_read_of_a_version_is_one_round_trip() {
    let none =
        Rates { throttle: 0.0, error_before: 0.0, error_after: 0.0, slow: 0.0, drop_before: 0.0, drop_after: 0.0 };
    let proxy = FaultProxy::start(&endpoint(), none, 1, Duration::ZERO).await;
    let timeouts = aws_config::timeout::TimeoutConfig::builder().build();
    let env = Env::builder().through(&proxy.url, timeouts).build().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-first-version-0000").await;
    env.call(rotate(&key, json!({"value": "sk-second-version-000", "previousValidFor": 600})).token(&env.root))
        .await
        .expect(200);
    env.call(rotate(&key, json!({"value": "sk-third-version-0000", "stage": "pending"})).token(&env.root))
        .await
        .expect(200);
    let requests = || proxy.counts.requests.load(Ordering::SeqCst);
    for (which, value, version) in [
        ("previous", "sk-first-version-0000", 1),
        ("pending", "sk-third-version-0000", 3),
        ("2", "sk-second-version-000", 2),
    ] {
        let mut sent = Vec::new();
        for _ in 0..3 {
            env.clock.advance_seconds(1);
            let before = requests();
            let r = env.call(read_version(&env.root, &key, which)).await.expect(200);
            assert_eq!((r.body["value"].as_str(), r.body["version"].as_u64()), (Some(value), Some(version)));
            sent.push(requests() - before);
        }
        // Full path: BatchGetItem, then the PutItem and the Decrypt; then
        // planned: the BatchGetItem, the PutItem and the Decrypt, at once.
        assert_eq!(sent, vec![3, 3, 3], "{which}");
    }
}

#[tokio::test]
async fn a_plan_never_serves_a_retired_version_or_a_previous_one_past_its_window() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-version-one-000000").await;
    let (tid, t) = env.issue(&env.root, json!({"name": "reader", "scopes": ["keys:read"]})).await;
    env.call(rotate(&key, json!({"value": "sk-version-two-000000", "previousValidFor": 60})).token(&env.root))
        .await
        .expect(200);
    let mut ok = 0;
    let mut read = async |which: &str| {
        env.clock.advance_seconds(1);
        let r = env.call(read_version(&t, &key, which)).await;
        if r.status == 200 {
            ok += 1;
        }
        r
    };
    // Planned reads of the previous version, by stage and by number.
    for which in ["previous", "previous", "1", "1"] {
        assert_eq!(read(which).await.expect(200).body["value"], "sk-version-one-000000");
    }
    // Its window closes (no cleanup yet): the plans serve nothing.
    env.clock.advance_seconds(60);
    for which in ["previous", "1"] {
        read(which).await.expect_error(404, "not_found");
    }
    // A pending version, planned, then replaced: the replaced one is retired.
    env.call(rotate(&key, json!({"value": "sk-version-three-0000", "stage": "pending"})).token(&env.root))
        .await
        .expect(200);
    for which in ["pending", "pending", "3", "3"] {
        assert_eq!(read(which).await.expect(200).body["value"], "sk-version-three-0000");
    }
    env.call(rotate(&key, json!({"value": "sk-version-four-00000", "stage": "pending"})).token(&env.root))
        .await
        .expect(200);
    read("3").await.expect_error(404, "not_found");
    assert_eq!(read("pending").await.expect(200).body["version"], 4);
    // Current planned, then a promotion with a window: current is v4, the
    // previous plan finds v2, the pending plan finds nothing.
    for _ in 0..2 {
        assert_eq!(read("current").await.expect(200).body["version"], 2);
    }
    let promote = Req::post(&format!("/keys/{key}/promote")).token(&env.root).json(json!({"previousValidFor": 30}));
    env.call(promote).await.expect(200);
    assert_eq!(read("current").await.expect(200).body["value"], "sk-version-four-00000");
    assert_eq!(read("previous").await.expect(200).body["value"], "sk-version-two-000000");
    read("pending").await.expect_error(404, "not_found");
    // A rotation with no window destroys at once both the version that was
    // current (v4) and the previous one (v2).
    assert_eq!(read("2").await.expect(200).body["version"], 2);
    env.call(rotate(&key, json!({"value": "sk-version-five-00000"})).token(&env.root)).await.expect(200);
    for which in ["2", "4", "previous"] {
        read(which).await.expect_error(404, "not_found");
    }
    assert_eq!(read("current").await.expect(200).body["version"], 5);
    let ok_reads = ok;
    assert_eq!(usage(&env, &tid, &key).await, (ok_reads, ok_reads), "only the served reads counted");
}
