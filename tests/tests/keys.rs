//! `/keys` against moto: create, list, show, update, rotate, delete,
//! validation, and tenancy.

use ibyok::config::Config;
use ibyok::mode::Guardrails;
use ibyok_tests::{Env, Req};
use serde_json::json;

#[tokio::test]
async fn create_key_answers_metadata_with_a_preview_and_never_the_value() {
    let env = Env::new().await;
    let body = json!({"name": "OpenAI Production", "llmType": "openai", "value": "sk-abcdefghXy9Q",
                      "modeOverrides": {"development": "live"}});
    let r = env.call(Req::post("/keys").token(&env.root).json(body)).await.expect(201);
    let b = &r.body;
    assert!(b["keyId"].as_str().unwrap().starts_with("key_"));
    assert_eq!(b["name"], "OpenAI Production");
    assert_eq!(b["llmType"], "openai");
    assert_eq!(b["preview"], "…Xy9Q");
    assert_eq!(b["modeOverrides"], json!({"development": "live"}));
    assert_eq!(b["lastUsedAt"], json!(null));
    assert!(b["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(b["version"], 1, "the value given at creation is version 1");
    assert_eq!(b.as_object().unwrap().len(), 9, "exactly the contract's fields: {b}");
    assert!(!r.text().contains("sk-abcdefgh"));
    assert!(r.raw.header("x-request-id").is_some());
}

#[tokio::test]
async fn short_values_have_a_bare_ellipsis_preview() {
    let env = Env::new().await;
    let r = env
        .call(Req::post("/keys").token(&env.root).json(json!({"name": "n", "llmType": "groq", "value": "short"})))
        .await
        .expect(201);
    assert_eq!(r.body["preview"], "…");
}

#[tokio::test]
async fn create_key_refuses_bad_fields_naming_each() {
    let env = Env::new().await;
    let ok = json!({"name": "n", "llmType": "openai", "value": "sk-1"});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases = [
        (without("name"), "name"),
        (with("name", json!("")), "name"),
        (with("name", json!("x".repeat(101))), "name"),
        (with("name", json!(7)), "name"),
        (without("llmType"), "llmType"),
        (with("llmType", json!("Open AI")), "llmType"),
        (with("llmType", json!("-x")), "llmType"),
        (without("value"), "value"),
        (with("value", json!("")), "value"),
        (with("value", json!("   \n\t")), "value"),
        (with("value", json!("x".repeat(8193))), "value"),
        (with("modeOverrides", json!({"qa": "live"})), "modeOverrides"),
        (with("modeOverrides", json!({"development": "sometimes"})), "modeOverrides"),
        (with("modeOverrides", json!(["live"])), "modeOverrides"),
        (with("extra", json!(1)), "extra"),
    ];
    for (body, field) in cases {
        let r = env.call(Req::post("/keys").token(&env.root).json(body.clone())).await;
        let r = r.expect_error(400, "invalid_request");
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field), "{body} → {msg}");
    }
    // 8192 bytes exactly is fine.
    env.call(Req::post("/keys").token(&env.root).json(with("value", json!("x".repeat(8192))))).await.expect(201);
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_are_refused() {
    let env = Env::new().await;
    let post = || Req::post("/keys").token(&env.root);
    env.call(post().raw_body(Some("text/plain"), b"{}")).await.expect_error(415, "unsupported_media_type");
    env.call(post().raw_body(None, b"{}")).await.expect_error(415, "unsupported_media_type");
    env.call(post().raw_body(Some("application/json"), b"{\"name\":")).await.expect_error(400, "invalid_request");
    env.call(post().raw_body(Some("application/json"), b"[1]")).await.expect_error(400, "invalid_request");
    env.call(post().raw_body(Some("application/json; charset=utf-8"), b"{}"))
        .await
        .expect_error(400, "invalid_request");
    let big = vec![b' '; 64 * 1024 + 1];
    env.call(post().raw_body(Some("application/json"), &big)).await.expect_error(413, "payload_too_large");
}

#[tokio::test]
async fn keys_list_pages_with_limit_and_cursor() {
    let env = Env::new().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(env.add_key(&env.root, &format!("k{i}"), "openai", "sk-123").await);
        env.clock.advance_seconds(1);
    }
    let first = env.call(Req::get("/keys?limit=2").token(&env.root)).await.expect(200);
    let page: Vec<_> = first.body["keys"].as_array().unwrap().iter().map(|k| k["keyId"].clone()).collect();
    assert_eq!(page, vec![json!(ids[0]), json!(ids[1])]);
    let cursor = first.body["nextCursor"].as_str().expect("a next cursor").to_owned();
    let second = env.call(Req::get(&format!("/keys?limit=2&cursor={cursor}")).token(&env.root)).await.expect(200);
    assert_eq!(second.body["keys"][0]["keyId"], json!(ids[2]));
    assert_eq!(second.body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(second.body["nextCursor"], json!(null));
    let all = env.call(Req::get("/keys?unknown=1").token(&env.root)).await.expect(200);
    assert_eq!(all.body["keys"].as_array().unwrap().len(), 3);
    for bad in ["limit=0", "limit=101", "limit=x", "limit=1.5", "cursor=garbage", "cursor="] {
        env.call(Req::get(&format!("/keys?{bad}")).token(&env.root)).await.expect_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn a_cursor_from_another_tenant_is_refused() {
    let env = Env::new().await;
    for i in 0..2 {
        env.add_key(&env.root, &format!("k{i}"), "openai", "sk-123").await;
    }
    let first = env.call(Req::get("/keys?limit=1").token(&env.root)).await.expect(200);
    let cursor = first.body["nextCursor"].as_str().unwrap().to_owned();
    let (_, other) = env.other_tenant().await;
    env.call(Req::get(&format!("/keys?cursor={cursor}")).token(&other)).await.expect_error(400, "invalid_request");
}

#[tokio::test]
async fn patch_renames_and_sets_or_clears_overrides() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "old", "openai", "sk-123").await;
    let path = format!("/keys/{key}");
    env.clock.advance_seconds(5);
    let r = env
        .call(Req::patch(&path).token(&env.root).json(json!({"name": "new", "modeOverrides": {"staging": "live"}})))
        .await
        .expect(200);
    assert_eq!(r.body["name"], "new");
    assert_eq!(r.body["modeOverrides"], json!({"staging": "live"}));
    assert_ne!(r.body["updatedAt"], r.body["createdAt"]);
    let r = env.call(Req::patch(&path).token(&env.root).json(json!({"modeOverrides": {"staging": null}}))).await;
    assert_eq!(r.expect(200).body["modeOverrides"], json!({}));
    let shown = env.call(Req::get(&path).token(&env.root)).await.expect(200);
    assert_eq!(shown.body["name"], "new");
    env.call(Req::patch(&path).token(&env.root).json(json!({}))).await.expect_error(400, "invalid_request");
    env.call(Req::patch(&path).token(&env.root).json(json!({"value": "x"}))).await.expect_error(400, "invalid_request");
}

#[tokio::test]
async fn rotation_replaces_the_value_and_the_preview() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-old-value-1111").await;
    let r = env
        .call(Req::put(&format!("/keys/{key}/value")).token(&env.root).json(json!({"value": "sk-new-value-2222"})))
        .await
        .expect(200);
    assert_eq!(r.body["preview"], "…2222");
    let read = env.read(&env.root, &key, "production").await.expect(200);
    assert_eq!(read.body["value"], "sk-new-value-2222");
}

#[tokio::test]
async fn a_failed_rotation_leaves_the_old_value_readable() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-old-value-1111").await;
    // A service whose KMS key does not exist: GenerateDataKey fails.
    let broken = env.app_with(Config::default(), "alias/does-not-exist");
    let req = Req::put(&format!("/keys/{key}/value")).token(&env.root).json(json!({"value": "sk-new-value-2222"}));
    let r = ibyok_tests::Resp::from(broken.handle(req.0).await);
    assert!(r.status >= 500, "{}", r.text());
    assert!(!r.text().contains("does-not-exist"), "no internals in the body: {}", r.text());
    let read = env.read(&env.root, &key, "production").await.expect(200);
    assert_eq!(read.body["value"], "sk-old-value-1111");
}

#[tokio::test]
async fn delete_removes_the_key_and_later_reads_are_404() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-123").await;
    env.call(Req::delete(&format!("/keys/{key}")).token(&env.root)).await.expect(204);
    env.read(&env.root, &key, "production").await.expect_error(404, "not_found");
    env.call(Req::get(&format!("/keys/{key}")).token(&env.root)).await.expect_error(404, "not_found");
    env.call(Req::delete(&format!("/keys/{key}")).token(&env.root)).await.expect_error(404, "not_found");
    let raw = env
        .dynamo
        .get_item()
        .table_name(&env.tables.keys)
        .key("keyId", aws_sdk_dynamodb::types::AttributeValue::S(key))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(raw.item.is_none(), "the ciphertext is gone");
}

#[tokio::test]
async fn another_tenants_key_answers_exactly_like_a_missing_one() {
    let env = Env::new().await;
    let (_, other) = env.other_tenant().await;
    let theirs = env.add_key(&other, "theirs", "openai", "sk-their-secret-999").await;
    let missing = {
        let mine = env.add_key(&env.root, "mine", "openai", "sk-1").await;
        env.call(Req::delete(&format!("/keys/{mine}")).token(&env.root)).await.expect(204);
        mine
    };
    for id in [&theirs, &missing, &"key_nonsense".to_owned()] {
        let reqs = [
            Req::get(&format!("/keys/{id}")),
            Req::patch(&format!("/keys/{id}")).json(json!({"name": "x"})),
            Req::put(&format!("/keys/{id}/value")).json(json!({"value": "x"})),
            Req::delete(&format!("/keys/{id}")),
            Req::get(&format!("/external/keys/{id}/value")),
        ];
        for req in reqs {
            let r = env.call(req.token(&env.root)).await.expect_error(404, "not_found");
            assert_eq!(r.body["error"]["message"], "no such key");
        }
    }
    let listed = env.call(Req::get("/keys").token(&env.root)).await.expect(200);
    assert!(listed.body["keys"].as_array().unwrap().is_empty());
    // Theirs is untouched.
    assert_eq!(env.read(&other, &theirs, "production").await.expect(200).body["value"], "sk-their-secret-999");
}

#[tokio::test]
async fn with_prod_mock_disallowed_no_write_can_make_production_mock() {
    let config =
        Config { guardrails: Guardrails { prod_mock_allowed: false, ..Guardrails::none() }, ..Config::default() };
    let env = Env::builder().config(config).build().await;
    let body = json!({"name": "n", "llmType": "openai", "value": "sk-1", "modeOverrides": {"production": "mock"}});
    env.call(Req::post("/keys").token(&env.root).json(body)).await.expect_error(409, "conflict");
    let key = env.add_key(&env.root, "n", "openai", "sk-1").await;
    let patch = json!({"modeOverrides": {"production": "mock"}});
    env.call(Req::patch(&format!("/keys/{key}")).token(&env.root).json(patch)).await.expect_error(409, "conflict");
    let put = json!({"production": "mock"});
    env.call(Req::put("/settings/modes").token(&env.root).json(put)).await.expect_error(409, "conflict");
    // Other environments stay free.
    let put = json!({"development": "live"});
    env.call(Req::put("/settings/modes").token(&env.root).json(put)).await.expect(200);
}
