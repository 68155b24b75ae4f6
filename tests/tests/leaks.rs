//! A full flow with every log at the most verbose level (ours and the AWS
//! SDK's), plus the error paths: no key value, data key or token secret may
//! appear in any log line or error body.

use ibyok_tests::{Env, Req};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_a_log_line_or_an_error_body() {
    // Even with the SDK told to log bodies, none may reach the log.
    // Set before any other thread of this test process reads it.
    std::env::set_var("LOG_SENSITIVE_BODIES", "true");
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(ibyok::telemetry::filter("trace"))
        .with_writer(move || writer.clone())
        .json()
        .init();

    let env = Env::new().await;
    let value = "sk-leak-canary-value-9d8c7b6a";
    let rotated = "sk-leak-canary-rotated-1a2b3c";
    let key = env.add_key(&env.root, "k", "openai", value).await;
    let (tid, token) = env.issue(&env.root, json!({"name": "t", "scopes": ["keys:read", "tokens:write"]})).await;
    let mut bodies = Vec::new();
    bodies.push(env.read(&token, &key, "production").await.expect(200).text());
    env.call(Req::put(&format!("/keys/{key}/value")).token(&env.root).json(json!({"value": rotated})))
        .await
        .expect(200);
    env.read(&token, &key, "development").await.expect(200);
    // Error paths: bad bodies echoing secrets, bad tokens, forbidden, tampering.
    let bad = json!({"name": "n", "llmType": "Not Valid", "value": value});
    bodies.push(env.call(Req::post("/keys").token(&env.root).json(bad)).await.expect(400).text());
    let mut typo = token.clone();
    typo.pop();
    typo.push('!');
    bodies.push(env.call(Req::get("/keys").token(&typo)).await.expect(401).text());
    bodies.push(
        env.call(Req::post("/keys").token(&token).json(json!({"name": "n", "llmType": "x", "value": value})))
            .await
            .expect(403)
            .text(),
    );
    bodies.push(
        env.call(Req::post("/keys").token(&env.root).raw_body(Some("application/json"), value.as_bytes()))
            .await
            .expect(400)
            .text(),
    );
    let item = env
        .dynamo
        .get_item()
        .table_name(&env.tables.keys)
        .key("keyId", aws_sdk_dynamodb::types::AttributeValue::S(key.clone()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let mut ct = item["ciphertext"].as_b().unwrap().as_ref().to_vec();
    ct[3] ^= 0xff;
    let mut tampered = item.clone();
    tampered.insert("ciphertext".into(), aws_sdk_dynamodb::types::AttributeValue::B(ct.into()));
    env.put_key_item(tampered).await;
    bodies.push(env.read(&token, &key, "production").await.expect(500).text());
    env.call(Req::delete(&format!("/tokens/{tid}")).token(&env.root)).await.expect(204);
    bodies.push(env.read(&token, &key, "production").await.expect(401).text());

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.lines().count() > 50, "the capture saw the SDK's trace logs too");
    assert!(text.contains("integrity"), "the tampered read logged an integrity alert");
    for secret in [value, rotated, &token, &env.root, &token[6..38], &env.root[6..38]] {
        assert!(!text.contains(secret), "a log line carries a secret");
        for b in &bodies[1..] {
            assert!(!b.contains(secret), "an error body carries a secret: {b}");
        }
    }
    // KMS answers carry data keys in a `Plaintext` field: no response body may be logged.
    assert!(!text.contains("Plaintext"), "a KMS response body was logged");
    assert!(!text.to_ascii_lowercase().contains("bearer ibyok_"), "an Authorization header was logged");
}
