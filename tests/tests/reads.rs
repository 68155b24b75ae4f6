//! The External API and mock mode against moto: resolution, guardrails,
//! fakes without KMS, usage counters, audit, settings.

use ibyok::clock::Clock;
use ibyok::config::Config;
use ibyok::mode::{Environment, Guardrails, Mode};
use ibyok_tests::{Env, Req, Resp};
use serde_json::json;
use std::collections::HashMap;

#[tokio::test]
async fn mode_resolution_follows_guardrail_then_override_then_tenant_setting() {
    let env = Env::new().await;
    let plain = env.add_key(&env.root, "plain", "anthropic", "sk-ant-real-000000").await;
    let body = json!({"name": "o", "llmType": "openai", "value": "sk-real-111111111", "modeOverrides": {"development": "live"}});
    let overridden = env.call(Req::post("/keys").token(&env.root).json(body)).await.expect(201).body["keyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let info = |r: &Resp| (r.body["modeInfo"]["effectiveMode"].clone(), r.body["modeInfo"]["source"].clone());
    // Tenant defaults: development mock, production live.
    let r = env.read(&env.root, &plain, "dev").await.expect(200);
    assert_eq!(info(&r), (json!("mock"), json!("tenant_setting")));
    assert_eq!(r.body["modeInfo"]["environment"], "development");
    assert!(r.body["value"].as_str().unwrap().starts_with("sk-ant-mock-"));
    assert_ne!(r.body["value"], "sk-ant-real-000000");
    let again = env.read(&env.root, &plain, "development").await.expect(200);
    assert_eq!(again.body["value"], r.body["value"], "a fake is stable for a key");
    let r = env.read(&env.root, &plain, "prod").await.expect(200);
    assert_eq!(info(&r), (json!("live"), json!("tenant_setting")));
    assert_eq!(r.body["value"], "sk-ant-real-000000");
    // The key's override wins over the tenant's default.
    let r = env.read(&env.root, &overridden, "development").await.expect(200);
    assert_eq!(info(&r), (json!("live"), json!("key_override")));
    assert_eq!(r.body["value"], "sk-real-111111111");
    // The tenant setting changes what its keys resolve to.
    let r = env.call(Req::put("/settings/modes").token(&env.root).json(json!({"staging": "live"}))).await.expect(200);
    assert_eq!(r.body, json!({"development": "mock", "staging": "live", "production": "live"}));
    let r = env.read(&env.root, &plain, "staging").await.expect(200);
    assert_eq!(info(&r), (json!("live"), json!("tenant_setting")));
    // Guardrails win over both.
    let mut config = Config::default();
    config.guardrails.forced.insert(Environment::Development, Mode::Mock);
    let guarded = env.app_with(config, "unused-in-mock-mode");
    let req = Req::get(&format!("/external/keys/{overridden}/value?env=development")).token(&env.root);
    let r = Resp::from(guarded.handle(req.0).await).expect(200);
    assert_eq!(info(&r), (json!("mock"), json!("guardrail")));
    assert!(r.body["value"].as_str().unwrap().starts_with("sk-mock-openai-"));
}

#[tokio::test]
async fn mock_reads_make_no_kms_call() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "google", "AIza-real-value-123").await;
    // A service whose KMS key does not exist: any KMS call would fail.
    let no_kms = env.app_with(Config::default(), "alias/does-not-exist");
    let get = |e: &str| Req::get(&format!("/external/keys/{key}/value?env={e}")).token(&env.root);
    let r = Resp::from(no_kms.handle(get("development").0).await).expect(200);
    assert_eq!(r.body["modeInfo"]["effectiveMode"], "mock");
    assert!(r.body["value"].as_str().unwrap().starts_with("AIzaMock-"));
    let live = Resp::from(no_kms.handle(get("production").0).await);
    assert_eq!(live.status, 500, "the same service fails a live read: {}", live.text());
}

#[tokio::test]
async fn fakes_have_each_providers_shape() {
    let env = Env::new().await;
    for (llm, prefix) in [
        ("openai", "sk-mock-openai-"),
        ("anthropic", "sk-ant-mock-"),
        ("google", "AIzaMock-"),
        ("groq", "gsk-mock-"),
        ("mistral", "mock-mistral-"),
    ] {
        let key = env.add_key(&env.root, llm, llm, "real-value-123456").await;
        let r = env.read(&env.root, &key, "staging").await.expect(200);
        assert!(r.body["value"].as_str().unwrap().starts_with(prefix), "{llm}: {}", r.body["value"]);
        assert!(!r.text().contains("real-value"));
    }
}

#[tokio::test]
async fn the_servers_environment_applies_without_env_and_bad_env_is_400() {
    let config = Config { environment: Environment::Staging, ..Config::default() };
    let env = Env::builder().config(config).build().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-1").await;
    let r = env.call(Req::get(&format!("/external/keys/{key}/value")).token(&env.root)).await.expect(200);
    assert_eq!(r.body["modeInfo"]["environment"], "staging");
    for bad in ["test", "Production", ""] {
        env.read(&env.root, &key, bad).await.expect_error(400, "invalid_request");
    }
    let r = env.call(Req::get(&format!("/external/keys/{key}/value")).token(&env.root)).await.expect(200);
    assert_eq!(r.body["version"], 1, "the answer names the version read");
    assert_eq!(r.body.as_object().unwrap().len(), 6);
}

#[tokio::test]
async fn with_prod_mock_disallowed_production_is_live_by_guardrail() {
    let env = Env::new().await;
    let body = json!({"name": "k", "llmType": "openai", "value": "sk-real-222222222", "modeOverrides": {"production": "mock"}});
    let key = env.call(Req::post("/keys").token(&env.root).json(body)).await.expect(201).body["keyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let config =
        Config { guardrails: Guardrails { prod_mock_allowed: false, ..Guardrails::none() }, ..Config::default() };
    let r = env.read(&env.root, &key, "production").await.expect(200);
    assert_eq!(r.body["modeInfo"]["source"], "key_override");
    let guarded = ibyok::api::App::new(env.store.clone(), env.app.kms.clone(), config).with_clock(env.clock.clone());
    let req = Req::get(&format!("/external/keys/{key}/value?env=production")).token(&env.root);
    let r = Resp::from(guarded.handle(req.0).await).expect(200);
    assert_eq!(
        r.body["modeInfo"],
        json!({"environment": "production", "effectiveMode": "live", "source": "guardrail"})
    );
    assert_eq!(r.body["value"], "sk-real-222222222");
}

#[tokio::test]
async fn settings_read_defaults_and_refuse_bad_input() {
    let env = Env::new().await;
    let r = env.call(Req::get("/settings/modes").token(&env.root)).await.expect(200);
    assert_eq!(r.body, json!({"development": "mock", "staging": "mock", "production": "live"}));
    for bad in [json!({"qa": "mock"}), json!({"development": "maybe"}), json!({"development": null}), json!([])] {
        env.call(Req::put("/settings/modes").token(&env.root).json(bad)).await.expect_error(400, "invalid_request");
    }
    let r = env.call(Req::put("/settings/modes").token(&env.root).json(json!({}))).await.expect(200);
    assert_eq!(r.body["production"], "live");
    let (_, other) = env.other_tenant().await;
    env.call(Req::put("/settings/modes").token(&other).json(json!({"production": "mock"}))).await.expect(200);
    let mine = env.call(Req::get("/settings/modes").token(&env.root)).await.expect(200);
    assert_eq!(mine.body["production"], "live", "another tenant's settings are its own");
}

#[tokio::test]
async fn reads_record_usage_and_audit() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-1").await;
    env.clock.advance_seconds(1);
    let (tid, t) = env.issue(&env.root, json!({"name": "reader", "scopes": ["keys:read"]})).await;
    env.clock.advance_seconds(1);
    env.read(&t, &key, "production").await.expect(200);
    env.clock.advance_seconds(1);
    env.read(&t, &key, "development").await.expect(200);
    env.settle().await;
    let usage = env.call(Req::get("/usage").token(&env.root)).await.expect(200);
    assert_eq!(usage.body["keys"][0]["retrievals"], 2);
    assert!(usage.body["keys"][0]["lastUsedAt"].is_string());
    let reader = usage.body["tokens"].as_array().unwrap().iter().find(|x| x["tokenId"] == json!(tid)).unwrap().clone();
    assert_eq!(reader["uses"], 2);
    let shown = env.call(Req::get(&format!("/keys/{key}")).token(&env.root)).await.expect(200);
    assert!(shown.body["lastUsedAt"].is_string());
    let audit = env.call(Req::get("/audit?limit=2").token(&env.root)).await.expect(200);
    let events = audit.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["action"], "key.read");
    assert_eq!(events[0]["environment"], "development", "newest first");
    assert_eq!(events[0]["effectiveMode"], "mock");
    assert_eq!(events[0]["tokenId"], json!(tid));
    assert_eq!(events[0]["keyId"], json!(key));
    assert_eq!(events[0]["outcome"], "ok");
    assert_eq!(events[0]["userAgent"], "ibyok-tests");
    for field in ["at", "requestId", "sourceIp"] {
        assert!(events[0].get(field).is_some(), "{field}");
    }
    let cursor = audit.body["nextCursor"].as_str().unwrap();
    let rest = env.call(Req::get(&format!("/audit?cursor={cursor}")).token(&env.root)).await.expect(200);
    let actions: Vec<_> = rest.body["events"].as_array().unwrap().iter().map(|e| e["action"].clone()).collect();
    assert_eq!(actions, vec![json!("token.create"), json!("key.create")]);
    assert_eq!(rest.body["nextCursor"], json!(null));
}

#[tokio::test]
async fn fifty_concurrent_reads_leave_the_counters_exact() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-concurrent-0000").await;
    let (_, t) = env.issue(&env.root, json!({"name": "reader", "scopes": ["keys:read"]})).await;
    let reads = (0..50).map(|i| env.read(&t, &key, if i % 2 == 0 { "production" } else { "development" }));
    for r in futures::future::join_all(reads).await {
        r.expect(200);
    }
    env.settle().await;
    let usage = env.call(Req::get("/usage").token(&env.root)).await.expect(200);
    assert_eq!(usage.body["keys"][0]["retrievals"], 50);
    let reader = usage.body["tokens"].as_array().unwrap().iter().find(|x| x["name"] == "reader").unwrap().clone();
    assert_eq!(reader["uses"], 50);
}

#[tokio::test]
async fn usage_is_tenant_wide_whatever_the_tokens_key_ids() {
    let env = Env::new().await;
    let k1 = env.add_key(&env.root, "k1", "openai", "sk-1").await;
    env.add_key(&env.root, "k2", "openai", "sk-2").await;
    let (_, t) = env.issue(&env.root, json!({"name": "u", "scopes": ["usage:read"], "keyIds": [k1]})).await;
    let usage = env.call(Req::get("/usage").token(&t)).await.expect(200);
    assert_eq!(usage.body["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn unknown_paths_and_methods_get_the_contracts_shapes() {
    let env = Env::new().await;
    let r = env.call(Req::get("/nowhere").token(&env.root)).await.expect_error(404, "not_found");
    assert!(r.raw.header("x-request-id").is_some());
    let r = env.call(Req::new("PUT", "/keys").token(&env.root)).await.expect_error(405, "method_not_allowed");
    assert_eq!(r.raw.header("allow"), Some("GET, POST"));
    env.call(Req::new("POST", "/usage")).await.expect_error(405, "method_not_allowed");
}

#[tokio::test]
async fn guardrails_show_what_the_deployment_forces() {
    let env = Env::new().await;
    let r = env.call(Req::get("/settings/guardrails").token(&env.root)).await.expect(200);
    assert_eq!(r.body, json!({"development": null, "staging": null, "production": null, "prodMockAllowed": true}));
    let mut config = Config::default();
    config.guardrails.forced.insert(Environment::Staging, Mode::Live);
    config.guardrails.prod_mock_allowed = false;
    let guarded = ibyok::api::App::new(env.store.clone(), env.app.kms.clone(), config).with_clock(env.clock.clone());
    let r = Resp::from(guarded.handle(Req::get("/settings/guardrails").token(&env.root).0).await).expect(200);
    assert_eq!(r.body, json!({"development": null, "staging": "live", "production": "live", "prodMockAllowed": false}));
}

#[tokio::test]
async fn every_authenticated_response_names_the_tokens_expiry() {
    let env = Env::new().await;
    let (_, t) = env.issue(&env.root, json!({"name": "short", "scopes": ["keys:read"], "expiresIn": 3600})).await;
    let key = env.add_key(&env.root, "k", "openai", "sk-expiry-header-0000").await;
    let want = env.clock.now().plus_seconds(3600).rfc3339();
    // A read twice (the second one planned), a 403, a 404.
    for req in [
        Req::get(&format!("/external/keys/{key}/value")),
        Req::get(&format!("/external/keys/{key}/value")),
        Req::get("/audit"),
        Req::get("/keys/key_nope"),
    ] {
        let r = env.call(req.token(&t)).await;
        assert_eq!(r.raw.header("ibyok-token-expires-at"), Some(want.as_str()), "{}", r.text());
    }
    let r = env.call(Req::get("/keys")).await.expect_error(401, "unauthorized");
    assert_eq!(r.raw.header("ibyok-token-expires-at"), None);
}

#[tokio::test]
async fn fifty_concurrent_reads_during_a_promote_get_the_old_or_the_new_version_never_an_error() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-before-promote-0001").await;
    let stage = json!({"value": "sk-after-promote-00002", "stage": "pending"});
    env.call(Req::put(&format!("/keys/{key}/value")).token(&env.root).json(stage)).await.expect(200);
    let (_, t) = env.issue(&env.root, json!({"name": "reader", "scopes": ["keys:read"]})).await;
    // Warm: the reader's plans for the current version (live and mock).
    env.read(&t, &key, "production").await.expect(200);
    env.read(&t, &key, "development").await.expect(200);
    let promote = async {
        let r = env.call(Req::post(&format!("/keys/{key}/promote")).token(&env.root).json(json!({}))).await;
        r.expect(200);
    };
    // The reads start over ~150 ms, the promote with the first of them.
    let reads = (0..50u64).map(|i| {
        let env_name = if i % 5 == 0 { "development" } else { "production" };
        let (env, t, key) = (&env, &t, &key);
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(i * 3)).await;
            env.read(t, key, env_name).await
        }
    });
    let (answers, ()) = tokio::join!(futures::future::join_all(reads), promote);
    let mut seen = HashMap::new();
    for r in answers {
        let r = r.expect(200);
        let (value, version) = (r.body["value"].as_str().unwrap().to_owned(), r.body["version"].as_u64().unwrap());
        match value.as_str() {
            "sk-before-promote-0001" => assert_eq!(version, 1),
            "sk-after-promote-00002" => assert_eq!(version, 2),
            mock => assert!(mock.starts_with("sk-mock-openai-") && (version == 1 || version == 2), "{mock}"),
        }
        *seen.entry(version).or_insert(0) += 1;
    }
    println!("during the promote: {seen:?} reads by version");
    // After it, every read is the new version.
    let r = env.read(&t, &key, "production").await.expect(200);
    assert_eq!((r.body["value"].as_str(), r.body["version"].as_u64()), (Some("sk-after-promote-00002"), Some(2)));
    env.settle().await;
    let usage = env.call(Req::get("/usage").token(&env.root)).await.expect(200);
    assert_eq!(usage.body["keys"][0]["retrievals"], 53, "every read counted once");
}
