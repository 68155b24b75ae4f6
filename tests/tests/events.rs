//! Every file in `events/` — the same files `sam local invoke -e` and
//! `cargo lambda invoke --data-file` take — goes through `lambda_http`'s
//! request parsing into its function's handler, against moto.

use ibyok_tests::Env;
use serde_json::json;

const TOKEN_PLACEHOLDER: &str = "ibyok_EXAMPLEtokenEXAMPLEtokenEXAMPLEt000000";
const KEY_PLACEHOLDER: &str = "key_EXAMPLEtenantEXAMPLEkeyEXAMPLEke";
const TOKEN_ID_PLACEHOLDER: &str = "tok_EXAMPLEtokenEXAMPLEtok";

fn events_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

#[tokio::test]
async fn every_event_parses_and_reaches_its_handler() {
    // A stand-in for GitHub's keys: the report's sample is signed here.
    let scanner = ibyok_tests::scanner::Scanner::start().await;
    let scan_key = ibyok_tests::scanner::ScanKey::generate();
    scanner.publish("EXAMPLE_KEY_IDENTIFIER", &scan_key, true);
    let config = ibyok::config::Config { github_keys_url: scanner.keys_url.clone(), ..Default::default() };
    let env = Env::builder().config(config).build().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-events-0000000").await;
    // A pending version for the promote event.
    let stage = json!({"value": "sk-events-pending-1", "stage": "pending"});
    env.call(ibyok_tests::Req::put(&format!("/keys/{key}/value")).token(&env.root).json(stage)).await.expect(200);
    let (victim, _) = env.issue(&env.root, json!({"name": "victim", "scopes": ["keys:read"]})).await;
    // In the order they can run; the destructive ones last.
    let plan = [
        ("submit.create-key", 201),
        ("submit.rotate-key", 200),
        ("retrieve.read-value", 200),
        ("token-issue.create-token", 201),
        ("keys.list-keys", 200),
        ("keys.get-key", 200),
        ("keys.update-key", 200),
        ("keys.list-versions", 200),
        ("keys.promote-key", 200),
        ("account.list-tokens", 200),
        ("account.get-modes", 200),
        ("account.get-guardrails", 200),
        ("account.put-modes", 200),
        ("account.usage", 200),
        ("account.daily-usage", 200),
        ("account.audit", 200),
        ("account.audit-digests", 200),
        ("account.unknown-path", 404),
        ("identities.create-identity", 201),
        ("identities.list-identities", 200),
        ("identities.list-members", 200),
        // No such identity: the exchanges' one 401.
        ("auth.exchange-oidc", 401),
        ("auth.exchange-aws", 401),
        // Sign-in is off here: no provider; a code nobody handed out.
        ("auth.list-providers", 200),
        ("auth.create-session", 401),
        // A token-shaped string whose checksum does not hold: a false positive.
        ("revoke.github-secret-scanning", 200),
        ("revoke.revoke-token", 204),
        ("keys.delete-key", 204),
        ("revoke.revoke-self", 204),
    ];
    let mut files: Vec<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".json").to_owned())
        .filter(|n| n != "cleanup.scheduled" && n != "usage.audit-stream")
        .collect();
    files.sort();
    let mut planned: Vec<String> = plan.iter().map(|(n, _)| (*n).to_owned()).collect();
    planned.sort();
    assert_eq!(files, planned, "every HTTP event is exercised");

    for (name, status) in plan {
        let text = std::fs::read_to_string(events_dir().join(format!("{name}.json")))
            .unwrap()
            .replace(TOKEN_PLACEHOLDER, &env.root)
            .replace(KEY_PLACEHOLDER, &key)
            .replace(TOKEN_ID_PLACEHOLDER, &victim);
        // GitHub signs the raw body.
        let body = serde_json::from_str::<serde_json::Value>(&text).unwrap()["body"].as_str().map(str::to_owned);
        let text = match body {
            Some(b) => text.replace("EXAMPLE_SIGNATURE", &scan_key.sign(b.as_bytes())),
            None => text,
        };
        let req = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let app = &env.app;
        let resp = match name.split('.').next().unwrap() {
            "submit" => submit::handler(app, req).await,
            "retrieve" => retrieve::handler(app, req).await,
            "token-issue" => token_issue::handler(app, req).await,
            "revoke" => revoke::handler(app, req).await,
            "keys" => keys::handler(app, req).await,
            "account" => account::handler(app, req).await,
            "identities" => identities::handler(app, req).await,
            "auth" => auth::handler(app, req).await,
            other => panic!("no function {other}"),
        };
        // What the runtime sends back to API Gateway: the payload v2 shape.
        let sent = serde_json::to_value(&resp).unwrap();
        let body = sent["body"].as_str().unwrap_or_default().to_owned();
        assert_eq!(sent["statusCode"], status, "{name}: {body}");
        assert_eq!(sent["isBase64Encoded"], false, "{name}");
        assert_eq!(resp.0.status, status, "{name}: {body}");
        assert_eq!(
            sent["headers"]["x-request-id"],
            json!(format!("example-{}", name.split_once('.').unwrap().1)),
            "{name}"
        );
        if !body.is_empty() {
            serde_json::from_str::<serde_json::Value>(&body).unwrap_or_else(|e| panic!("{name}: {e}: {body}"));
        }
    }
}

#[tokio::test]
async fn the_scheduled_event_runs_cleanup() {
    let env = Env::new().await;
    let text = std::fs::read_to_string(events_dir().join("cleanup.scheduled.json")).unwrap();
    let event: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(event["detail-type"], "Scheduled Event");
    env.issue(&env.root, json!({"name": "short", "scopes": ["keys:read"], "expiresIn": 60})).await;
    env.clock.advance_seconds(61);
    let report = cleanup::handler(env.dyn_store(), None, env.clock.as_ref()).await.unwrap();
    assert_eq!((report.tokens.items_read, report.tokens.deleted), (1, 1));
}

#[tokio::test]
async fn a_function_answers_another_functions_route_as_unknown() {
    let env = Env::new().await;
    let text = std::fs::read_to_string(events_dir().join("keys.list-keys.json"))
        .unwrap()
        .replace(TOKEN_PLACEHOLDER, &env.root);
    let req = lambda_http::request::from_str(&text).unwrap();
    let resp = retrieve::handler(&env.app, req).await;
    assert_eq!(resp.0.status, 404);
}

/// The audit stream's event (`sam local invoke UsageFunction -e …`) through
/// the usage function: the read it carries counts once, however often the
/// batch is delivered.
#[tokio::test]
async fn the_audit_stream_event_counts_its_read_once() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-events-0000000").await;
    let (reader, _) = env.issue(&env.root, json!({"name": "reader", "scopes": ["keys:read"]})).await;
    let text = std::fs::read_to_string(events_dir().join("usage.audit-stream.json"))
        .unwrap()
        .replace("ten_EXAMPLEtenant", env.tenant.as_str())
        .replace(KEY_PLACEHOLDER, &key)
        .replace(TOKEN_ID_PLACEHOLDER, &reader);
    let event: serde_json::Value = serde_json::from_str(&text).unwrap();
    for _ in 0..2 {
        let applied = usage::handler(env.dyn_store(), env.clock.as_ref(), &event).await.unwrap();
        assert_eq!((applied.records, applied.reads), (1, 1));
    }
    let u = env.call(ibyok_tests::Req::get("/usage").token(&env.root)).await.expect(200);
    let k = u.body["keys"].as_array().unwrap().iter().find(|k| k["keyId"] == json!(key)).unwrap().clone();
    assert_eq!(k["retrievals"], 1);
    let t = u.body["tokens"].as_array().unwrap().iter().find(|t| t["tokenId"] == json!(reader)).unwrap().clone();
    assert_eq!(t["uses"], 1);
}
