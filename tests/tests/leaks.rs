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

    // Sign-in on, against a local OpenID provider, with a canary client secret.
    let issuer = ibyok_tests::issuer::Issuer::start().await;
    let signer = ibyok_tests::issuer::SigningKey::ec();
    issuer.publish("k1", &signer);
    let client_secret = "oidc-client-secret-canary-5e4d3c";
    let sign_in = issuer.sign_in("vault", client_secret, false);
    let env = Env::builder().config(ibyok::config::Config { sign_in, ..Default::default() }).build().await;
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

    // A sign-in: its state, cookie, PKCE verifier, one-time code and session
    // token, and its error paths (a replayed code, a foreign cookie).
    env.call(Req::post("/members").token(&env.root).json(json!({"provider": "oidc", "email": "ana@acme.example",
        "role": "viewer"})))
        .await
        .expect(201);
    let started = env.call(Req::get("/auth/oidc/start")).await.expect(302);
    let location = started.raw.header("location").unwrap().to_owned();
    let query = ibyok::api::body::parse_query(location.split_once('?').map(|(_, q)| q));
    let param = |k: &str| query.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let (state, nonce) = (param("state"), param("nonce"));
    let cookie = started.raw.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let now = {
        use ibyok::clock::Clock;
        env.clock.now().seconds()
    };
    let claims = json!({"iss": issuer.url, "aud": "vault", "sub": "ana", "iat": now, "exp": now + 60, "nonce": nonce,
                        "email": "ana@acme.example", "email_verified": true, "name": "Ana"});
    issuer.answer_id_token(signer.sign(&json!({"alg": "ES256", "kid": "k1"}), &claims));
    let mut callback = Req::get(&format!("/auth/oidc/callback?code=provider-code-canary&state={state}"));
    callback.0.cookie = Some(cookie.clone().into());
    let finished = env.call(callback).await.expect(302);
    let code = finished.raw.header("location").unwrap().split_once("#signin=").unwrap().1.to_owned();
    let sent = issuer.last_token_request();
    let verifier = sent.split("code_verifier=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let redeem = |cookie: &str| {
        let mut r = Req::post("/auth/session").json(json!({"code": code}));
        r.0.cookie = Some(cookie.to_owned().into());
        r
    };
    let session = env.call(redeem(&cookie)).await.expect(201);
    let session_token = session.body["token"].as_str().unwrap().to_owned();
    bodies.push(env.call(redeem(&cookie)).await.expect(401).text());
    bodies.push(env.call(redeem("ibyok_signin=another-browser")).await.expect(401).text());
    env.call(Req::get("/keys").token(&session_token)).await.expect(200);
    let cookie_value = cookie.split_once('=').unwrap().1.to_owned();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.lines().count() > 50, "the capture saw the SDK's trace logs too");
    for secret in
        [client_secret, &session_token, &session_token[6..38], &code, &cookie_value, &verifier, &state, &nonce]
    {
        assert!(!text.contains(secret), "a log line carries a sign-in secret");
        for b in &bodies[1..] {
            assert!(!b.contains(secret), "an error body carries a sign-in secret: {b}");
        }
    }
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
