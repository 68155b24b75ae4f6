//! Key versions against moto: rotation to a current or pending version,
//! promotion, the versions list, reads by version (live and mock), audit,
//! bad input, scopes and allow-lists.

use ibyok::clock::Clock;
use ibyok::config::Config;
use ibyok_tests::{Env, Req, Resp};
use serde_json::{json, Value};

fn put(key: &str, body: Value) -> Req {
    Req::put(&format!("/keys/{key}/value")).json(body)
}

fn promote(key: &str, body: Value) -> Req {
    Req::post(&format!("/keys/{key}/promote")).json(body)
}

fn read(key: &str, env: &str, version: &str) -> Req {
    Req::get(&format!("/external/keys/{key}/value?env={env}&version={version}"))
}

async fn versions(env: &Env, key: &str) -> Vec<Value> {
    let r = env.call(Req::get(&format!("/keys/{key}/versions")).token(&env.root)).await.expect(200);
    assert_eq!(r.body.as_object().unwrap().len(), 1, "{}", r.body);
    r.body["versions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn two_phase_rotation_keeps_every_version_where_the_contract_says() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-first-value-000001").await;
    // A pending version: stored beside current, read only by asking.
    let r = env.call(put(&key, json!({"value": "sk-second-value-00002", "stage": "pending"})).token(&env.root)).await;
    let meta = r.expect(200).body;
    assert_eq!((meta["version"].as_u64(), meta["preview"].as_str()), (Some(1), Some("…0001")), "current unchanged");
    let get = |v: &str| env.call(read(&key, "production", v).token(&env.root));
    assert_eq!(get("current").await.expect(200).body["value"], "sk-first-value-000001");
    let r = get("pending").await.expect(200);
    assert_eq!((r.body["value"].as_str(), r.body["version"].as_u64()), (Some("sk-second-value-00002"), Some(2)));
    get("previous").await.expect_error(404, "not_found");
    // Promoted with an hour's window.
    let before = env.clock.now();
    let r = env.call(promote(&key, json!({"previousValidFor": 3600})).token(&env.root)).await.expect(200);
    assert_eq!((r.body["version"].as_u64(), r.body["preview"].as_str()), (Some(2), Some("…0002")));
    let listed = versions(&env, &key).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0],
        json!({"version": 2, "stage": "current", "createdAt": listed[0]["createdAt"], "retiresAt": null, "preview": "…0002"})
    );
    assert_eq!(
        (&listed[1]["version"], &listed[1]["stage"], &listed[1]["preview"]),
        (&json!(1), &json!("previous"), &json!("…0001"))
    );
    assert_eq!(listed[1]["retiresAt"].as_str().unwrap(), before.plus_seconds(3600).rfc3339());
    assert_eq!(get("previous").await.expect(200).body["value"], "sk-first-value-000001");
    assert_eq!(get("1").await.expect(200).body["version"], 1);
    assert_eq!(get("current").await.expect(200).body["version"], 2);
    // Nothing pending now: promote is 409.
    env.call(promote(&key, json!({})).token(&env.root)).await.expect_error(409, "conflict");
    env.call(Req::post(&format!("/keys/{key}/promote")).token(&env.root)).await.expect_error(409, "conflict");
    // A straight rotation (default window 0): v2 goes at once, and v1 with it.
    let r = env.call(put(&key, json!({"value": "sk-third-value-000003"})).token(&env.root)).await.expect(200);
    assert_eq!(r.body["version"], 3);
    let listed = versions(&env, &key).await;
    assert_eq!(listed.iter().map(|v| v["version"].as_u64().unwrap()).collect::<Vec<_>>(), vec![3]);
    for gone in ["previous", "1", "2", "4", "pending"] {
        get(gone).await.expect_error(404, "not_found");
    }
    // A second pending replaces the first, whose number is never reused.
    for v in ["sk-fourth-value-00004", "sk-fifth-value-000005"] {
        env.call(put(&key, json!({"value": v, "stage": "pending"})).token(&env.root)).await.expect(200);
    }
    get("4").await.expect_error(404, "not_found");
    assert_eq!(get("pending").await.expect(200).body["version"], 5);
    let listed = versions(&env, &key).await;
    assert_eq!(
        listed
            .iter()
            .map(|v| (v["version"].as_u64().unwrap(), v["stage"].as_str().unwrap().to_owned()))
            .collect::<Vec<_>>(),
        vec![(5, "pending".to_owned()), (3, "current".to_owned())]
    );
    // The metadata carries the current version; deletion takes them all.
    let meta = env.call(Req::get(&format!("/keys/{key}")).token(&env.root)).await.expect(200);
    assert_eq!(meta.body["version"], 3);
    let listed = env.call(Req::get("/keys").token(&env.root)).await.expect(200);
    assert_eq!(listed.body["keys"][0]["version"], 3);
    env.call(Req::delete(&format!("/keys/{key}")).token(&env.root)).await.expect(204);
    for v in ["current", "pending", "5"] {
        get(v).await.expect_error(404, "not_found");
    }
    env.call(Req::get(&format!("/keys/{key}/versions")).token(&env.root)).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn audit_events_carry_the_version_rotated_promoted_or_read() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-audited-value-00001").await;
    env.call(put(&key, json!({"value": "sk-audited-value-00002", "stage": "pending"})).token(&env.root))
        .await
        .expect(200);
    env.call(read(&key, "production", "pending").token(&env.root)).await.expect(200);
    env.call(promote(&key, json!({"previousValidFor": 60})).token(&env.root)).await.expect(200);
    env.call(read(&key, "development", "previous").token(&env.root)).await.expect(200);
    let audit = env.call(Req::get("/audit?limit=5").token(&env.root)).await.expect(200);
    let got: Vec<(String, Value)> = audit.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["version"].clone()))
        .collect();
    let want = [
        ("key.read", json!(1)),
        ("key.promote", json!(2)),
        ("key.read", json!(2)),
        ("key.rotate", json!(2)),
        ("key.create", json!(1)),
    ];
    assert_eq!(got, want.iter().map(|(a, v)| ((*a).to_owned(), v.clone())).collect::<Vec<_>>());
}

#[tokio::test]
async fn mock_reads_check_the_version_and_decrypt_nothing() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "anthropic", "sk-ant-real-value-0001").await;
    env.call(put(&key, json!({"value": "sk-ant-real-value-0002", "stage": "pending"})).token(&env.root))
        .await
        .expect(200);
    let no_kms = env.app_with(Config::default(), "alias/does-not-exist");
    let call = |req: Req| async { Resp::from(no_kms.handle(req.0).await) };
    for (which, version) in [("current", 1), ("pending", 2), ("2", 2), ("1", 1)] {
        let r = call(read(&key, "development", which).token(&env.root)).await.expect(200);
        assert_eq!(r.body["modeInfo"]["effectiveMode"], "mock");
        assert!(r.body["value"].as_str().unwrap().starts_with("sk-ant-mock-"));
        assert_eq!(r.body["version"], version, "{which}");
    }
    for which in ["previous", "3", "0"] {
        call(read(&key, "development", which).token(&env.root)).await.expect_error(404, "not_found");
    }
}

#[tokio::test]
async fn bad_version_input_is_400_naming_the_field() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-validated-value-001").await;
    let cases = [
        (json!({"value": "sk-x-new-value-0002", "stage": "later"}), "stage"),
        (json!({"value": "sk-x-new-value-0002", "stage": 1}), "stage"),
        (json!({"value": "sk-x-new-value-0002", "previousValidFor": -1}), "previousValidFor"),
        (json!({"value": "sk-x-new-value-0002", "previousValidFor": 2_592_001}), "previousValidFor"),
        (json!({"value": "sk-x-new-value-0002", "previousValidFor": 60.5}), "previousValidFor"),
        (json!({"value": "sk-x-new-value-0002", "previousValidFor": "60"}), "previousValidFor"),
        (json!({"value": "sk-x-new-value-0002", "stage": "pending", "previousValidFor": 60}), "previousValidFor"),
        (json!({"value": "sk-x-new-value-0002", "version": 3}), "version"),
        (json!({"stage": "pending"}), "value"),
    ];
    for (body, field) in cases {
        let r = env.call(put(&key, body.clone()).token(&env.root)).await.expect_error(400, "invalid_request");
        assert!(r.body["error"]["message"].as_str().unwrap().contains(field), "{body}: {}", r.body);
    }
    env.call(put(&key, json!({"value": "sk-x-new-value-0002", "previousValidFor": 2_592_000})).token(&env.root))
        .await
        .expect(200);
    // A window of 0 with pending means what it means at promote: accepted.
    let pending = json!({"value": "sk-x-new-value-0003", "stage": "pending", "previousValidFor": 0});
    env.call(put(&key, pending).token(&env.root)).await.expect(200);
    for (body, field) in [
        (json!({"previousValidFor": 2_592_001}), "previousValidFor"),
        (json!({"previousValidFor": null}), "previousValidFor"),
        (json!({"stage": "current"}), "stage"),
        (json!([]), "body"),
    ] {
        let r = env.call(promote(&key, body.clone()).token(&env.root)).await.expect_error(400, "invalid_request");
        assert!(r.body["error"]["message"].as_str().unwrap().contains(field), "{body}: {}", r.body);
    }
    for bad in ["latest", "-1", "1.0", "", "v2", "99999999999999999999"] {
        let r = env.call(read(&key, "production", bad).token(&env.root)).await.expect_error(400, "invalid_request");
        assert!(r.body["error"]["message"].as_str().unwrap().contains("version"), "{bad}");
    }
    // Nothing was written by the refused requests.
    assert_eq!(versions(&env, &key).await.len(), 3);
}

#[tokio::test]
async fn scopes_and_allow_lists_apply_to_the_version_routes() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-scoped-value-000001").await;
    let other = env.add_key(&env.root, "o", "openai", "sk-other-value-000001").await;
    env.call(put(&key, json!({"value": "sk-scoped-value-000002", "stage": "pending"})).token(&env.root))
        .await
        .expect(200);
    let (_, reader) = env.issue(&env.root, json!({"name": "r", "scopes": ["keys:read"], "keyIds": [key]})).await;
    // keys:read lists versions and reads them, but neither rotates nor promotes.
    env.call(Req::get(&format!("/keys/{key}/versions")).token(&reader)).await.expect(200);
    env.call(read(&key, "production", "pending").token(&reader)).await.expect(200);
    env.call(promote(&key, json!({})).token(&reader)).await.expect_error(403, "forbidden");
    env.call(put(&key, json!({"value": "sk-not-allowed-000003"})).token(&reader)).await.expect_error(403, "forbidden");
    // Outside its keyIds, and in another tenant: 404.
    env.call(Req::get(&format!("/keys/{other}/versions")).token(&reader)).await.expect_error(404, "not_found");
    let (_, stranger) = env.other_tenant().await;
    env.call(Req::get(&format!("/keys/{key}/versions")).token(&stranger)).await.expect_error(404, "not_found");
    env.call(promote(&key, json!({})).token(&stranger)).await.expect_error(404, "not_found");
    env.call(Req::post("/keys/key_nope/promote").token(&env.root)).await.expect_error(404, "not_found");
    env.call(Req::get(&format!("/keys/{key}/versions"))).await.expect_error(401, "unauthorized");
    // The pending version is still there.
    assert_eq!(versions(&env, &key).await[0]["stage"], "pending");
}
