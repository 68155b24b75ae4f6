//! `POST /github/secret-scanning` on moto, with a stand-in for GitHub that
//! serves its own keys document on loopback: a signed report revokes each
//! reported token of ours with its descendants, once (a second report
//! changes nothing); every wrong signature is 401 with nothing revoked;
//! strings that are not tokens cost no store call; another deployment's
//! token is not found; a batch of 1,000.

use ibyok::config::Config;
use ibyok::notify::{LeakNotice, Notifier};
use ibyok::store::ExpiryNotice;
use ibyok_tests::faults::{FaultProxy, Rates};
use ibyok_tests::scanner::{body, report, ScanKey, Scanner};
use ibyok_tests::{endpoint, Env, Req};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The notices sent, kept.
#[derive(Default)]
struct Recorder(Mutex<Vec<LeakNotice>>);

#[async_trait::async_trait]
impl Notifier for Recorder {
    async fn expiry(&self, _: &ExpiryNotice) -> Result<(), ibyok::fault::Fault> {
        Ok(())
    }
    async fn leaked(&self, n: &LeakNotice) -> Result<(), ibyok::fault::Fault> {
        self.0.lock().unwrap().push(n.clone());
        Ok(())
    }
}

struct World {
    env: Env,
    scanner: Scanner,
    key: ScanKey,
    notices: Arc<Recorder>,
}

async fn world_with(through: Option<&FaultProxy>) -> World {
    let scanner = Scanner::start().await;
    let key = ScanKey::generate();
    scanner.publish("k-current", &key, true);
    let config = Config { github_keys_url: scanner.keys_url.clone(), ..Config::default() };
    let mut builder = Env::builder().config(config);
    if let Some(proxy) = through {
        builder = builder.through(&proxy.url, aws_config::timeout::TimeoutConfig::builder().build());
    }
    let mut env = builder.build().await;
    let notices = Arc::new(Recorder::default());
    env.app.notifier = Some(notices.clone());
    World { env, scanner, key, notices }
}

impl World {
    /// A report of `tokens`, signed with the current key.
    async fn report(&self, tokens: &[&str]) -> (u16, Value) {
        let b = body(tokens);
        let r = self.env.call(report(&b, Some("k-current"), Some(&self.key.sign(&b)))).await;
        (r.status, r.body)
    }

    async fn alive(&self, token: &str) -> bool {
        match self.env.call(Req::get("/tokens?limit=1").token(token)).await.status {
            200 => true,
            401 => false,
            s => panic!("GET /tokens answered {s}"),
        }
    }

    async fn leaked_events(&self) -> Vec<Value> {
        let r = self.env.call(Req::get("/audit?limit=100").token(&self.env.root)).await.expect(200);
        r.body["events"].as_array().unwrap().iter().filter(|e| e["action"] == "token.leaked").cloned().collect()
    }

    async fn child(&self, parent: &str, name: &str) -> (String, String) {
        self.env.issue(parent, json!({"name": name, "scopes": ["tokens:write"], "expiresIn": 3600})).await
    }
}

fn labels(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|e| e["label"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn a_signed_report_revokes_the_token_and_its_descendants_once() {
    // GIVEN a token with a child and a grandchild, and a bystander.
    let w = world_with(None).await;
    let (leaked_id, leaked) = w.child(&w.env.root, "pushed to GitHub").await;
    let (_, child) = w.child(&leaked, "its child").await;
    let (_, grandchild) = w.child(&child, "its grandchild").await;
    let (_, bystander) = w.child(&w.env.root, "bystander").await;

    // WHEN GitHub reports it.
    let (status, feedback) = w.report(&[&leaked]).await;

    // THEN it is a true positive, and it and everything below it is revoked.
    assert_eq!(status, 200, "{feedback}");
    assert_eq!(
        feedback,
        json!([{"token_hash": ibyok::scanning::token_hash(&leaked), "token_type": "ibyok_token", "label": "true_positive"}])
    );
    for t in [&leaked, &child, &grandchild] {
        assert!(!w.alive(t).await, "a reported token or its descendant still works");
    }
    assert!(w.alive(&bystander).await);
    let events = w.leaked_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["tokenId"], json!(leaked_id));
    let detail: Value = serde_json::from_str(events[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail, json!({"url": "https://github.com/acme/app/blob/0123abc/.env", "source": "content"}));
    let notices = w.notices.0.lock().unwrap().clone();
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].tenant_id, w.env.tenant);
    assert_eq!(notices[0].tokens.len(), 1);
    assert_eq!(notices[0].tokens[0].token_id.as_str(), leaked_id);
    assert_eq!(notices[0].tokens[0].name, "pushed to GitHub");

    // WHEN the same report comes again (GitHub retries), THEN the same
    // answer, and no second event or notice.
    let (status, again) = w.report(&[&leaked]).await;
    assert_eq!((status, &again), (200, &feedback));
    assert_eq!(w.leaked_events().await.len(), 1);
    assert_eq!(w.notices.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_report_revoked_by_its_owner_first_is_still_ours_and_cascades() {
    let w = world_with(None).await;
    let (id, t) = w.child(&w.env.root, "revoked by hand").await;
    w.env.call(Req::delete(&format!("/tokens/{id}")).token(&w.env.root)).await.expect(204);
    let (status, feedback) = w.report(&[&t]).await;
    assert_eq!((status, labels(&feedback)), (200, vec!["true_positive"]));
    assert!(w.leaked_events().await.is_empty(), "revoked before the report: no token.leaked");
}

#[tokio::test]
async fn wrong_signatures_are_refused_and_revoke_nothing() {
    // GIVEN a live token, and a report of it.
    let w = world_with(None).await;
    let (_, t) = w.child(&w.env.root, "target").await;
    let other = ScanKey::generate();
    let stale = ScanKey::generate();
    w.scanner.publish("k-old", &stale, false);
    let b = body(&[&t]);
    let good = w.key.sign(&b);
    // The same report re-serialised (GitHub's signature covers its bytes,
    // not the JSON's meaning).
    let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_ne!(pretty, b);
    let another_body = body(&[&t, "ghp_other"]);
    let cases: Vec<(&str, Req)> = vec![
        ("no headers", report(&b, None, None)),
        ("no signature", report(&b, Some("k-current"), None)),
        ("no key id", report(&b, None, Some(&good))),
        ("an unknown key id", report(&b, Some("k-unknown"), Some(&good))),
        ("another key's signature", report(&b, Some("k-current"), Some(&other.sign(&b)))),
        ("a key that is not current", report(&b, Some("k-old"), Some(&stale.sign(&b)))),
        ("the signature of other bytes (re-serialised JSON)", report(&pretty, Some("k-current"), Some(&good))),
        (
            "a replayed body with another body's signature",
            report(&b, Some("k-current"), Some(&w.key.sign(&another_body))),
        ),
        ("a signature that is not base64", report(&b, Some("k-current"), Some("not base64!"))),
        ("a truncated signature", report(&b, Some("k-current"), Some(&good[..good.len() / 2]))),
    ];
    for (what, req) in cases {
        // WHEN it comes signed wrong, THEN 401.
        let r = w.env.call(req).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text());
    }
    // AND nothing was revoked or recorded.
    assert!(w.alive(&t).await);
    assert!(w.leaked_events().await.is_empty());
    assert!(w.notices.0.lock().unwrap().is_empty());
    // The signed original still works afterwards.
    let r = w.env.call(report(&b, Some("k-current"), Some(&good))).await.expect(200);
    assert_eq!(labels(&r.body), ["true_positive"]);
    assert!(!w.alive(&t).await);
}

#[tokio::test]
async fn strings_that_are_not_tokens_are_false_positives_with_no_store_call() {
    // GIVEN the service's store behind a proxy that counts every request.
    let rates =
        Rates { throttle: 0.0, error_before: 0.0, error_after: 0.0, slow: 0.0, drop_before: 0.0, drop_after: 0.0 };
    let proxy = FaultProxy::start(&endpoint(), rates, 1, Duration::from_secs(1)).await;
    let w = world_with(Some(&proxy)).await;
    let (_, real) = w.child(&w.env.root, "real").await;
    // An IBYOK-shaped string whose checksum does not hold: a real token
    // with its last character changed.
    let last = real.chars().last().unwrap();
    let bad_checksum = format!("{}{}", &real[..real.len() - 1], if last == 'A' { 'B' } else { 'A' });
    assert!(ibyok::token::ParsedToken::parse(&bad_checksum).is_none());
    let before = proxy.counts.requests.load(Ordering::SeqCst);

    // WHEN GitHub reports them.
    let (status, feedback) =
        w.report(&["ghp_1234567890abcdefghijklmnopqrstuvwxyz", &bad_checksum, "ibyok_short"]).await;

    // THEN false positives, and the store was never called.
    assert_eq!(status, 200, "{feedback}");
    assert_eq!(labels(&feedback), ["false_positive", "false_positive", "false_positive"]);
    assert_eq!(feedback[1]["token_hash"], json!(ibyok::scanning::token_hash(&bad_checksum)));
    assert_eq!(proxy.counts.requests.load(Ordering::SeqCst), before, "a store call for strings that are no tokens");
    assert!(w.alive(&real).await);
    // (A real token in the same way costs calls: the proxy counts them.)
    w.report(&[&real]).await;
    assert!(proxy.counts.requests.load(Ordering::SeqCst) > before);
}

#[tokio::test]
async fn another_deployments_token_is_not_found() {
    // GIVEN two deployments (their own tables), one token in each.
    let here = world_with(None).await;
    let there = world_with(None).await;
    let (_, ours) = here.child(&here.env.root, "ours").await;
    let (_, theirs) = there.child(&there.env.root, "theirs").await;
    let never_issued = ibyok::token::ParsedToken::generate();

    // WHEN this deployment gets a report of all three.
    let (status, feedback) = here.report(&[&theirs, never_issued.secret().expose_token(), &ours]).await;

    // THEN only its own is a true positive; the other deployment's token
    // stays live there.
    assert_eq!(status, 200);
    assert_eq!(labels(&feedback), ["false_positive", "false_positive", "true_positive"]);
    assert!(there.alive(&theirs).await);
    assert!(!here.alive(&ours).await);
}

/// `n` tokens of the tenant, written straight into the tables as the
/// DynamoDB adapter writes them (each item and its replicas; no audit or
/// children entries): issuing them one by one through moto would take
/// minutes.
async fn seed_tokens(env: &Env, n: usize) -> Vec<(String, String)> {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    use ibyok::clock::Clock;
    let now = env.clock.now();
    let (root, _) = ibyok::bootstrap::root_token(&env.tenant, "seed", now);
    let mut tokens = Vec::new();
    let mut writes: Vec<(String, WriteRequest)> = Vec::new();
    for i in 0..n {
        let token = ibyok::token::ParsedToken::generate();
        let record = ibyok::store::TokenRecord {
            token_id: token.id().clone(),
            tenant_id: env.tenant.clone(),
            verifier: token.verifier().to_vec(),
            name: format!("batch {i}"),
            grant: ibyok::token::Grant { expires_at: now.plus_seconds(3600), ..root.grant.clone() },
            created_at: now,
            issued_by: Some(root.token_id.clone()),
            ancestors: vec![root.token_id.clone()],
            revoked_at: None,
            last_used_at: None,
            uses: 0,
            identity_id: None,
            member_id: None,
        };
        let item = ibyok::store::dynamo::token_item(&record);
        let put = |item| {
            WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build().unwrap()).build()
        };
        for r in 0..ibyok::store::schema::RECORD_REPLICAS {
            let mut copy = item.clone();
            copy.insert("replicaId".into(), AttributeValue::S(format!("token#{}#{r}", token.id())));
            writes.push((env.tables.replicas.clone(), put(copy)));
        }
        writes.push((env.tables.tokens.clone(), put(item)));
        tokens.push((token.id().to_string(), token.secret().expose_token().to_owned()));
    }
    for chunk in writes.chunks(25) {
        let mut items: std::collections::HashMap<String, Vec<WriteRequest>> = Default::default();
        for (table, w) in chunk {
            items.entry(table.clone()).or_default().push(w.clone());
        }
        let out = env.dynamo.batch_write_item().set_request_items(Some(items)).send().await.unwrap();
        assert!(out.unprocessed_items.is_none_or(|u| u.is_empty()));
    }
    tokens
}

#[tokio::test]
async fn a_batch_of_a_thousand_tokens_in_one_report() {
    // GIVEN 1,000 tokens of ours.
    let w = world_with(None).await;
    let tokens = seed_tokens(&w.env, 1000).await;
    assert!(w.alive(&tokens[999].1).await);
    let secrets: Vec<&str> = tokens.iter().map(|(_, t)| t.as_str()).collect();
    let b = body(&secrets);
    println!("report body: {} bytes", b.len());

    // WHEN GitHub reports them in one request.
    let started = Instant::now();
    let r = w.env.call(report(&b, Some("k-current"), Some(&w.key.sign(&b)))).await;
    let took = started.elapsed();
    println!("a report of 1,000 tokens took {:.2} s (moto)", took.as_secs_f64());

    // THEN every one is a true positive and revoked, each with its event.
    assert_eq!(r.status, 200, "{}", r.text());
    let labels = labels(&r.body);
    assert_eq!(labels.len(), 1000);
    assert!(labels.iter().all(|l| *l == "true_positive"));
    let ids: Vec<ibyok::ids::TokenId> = tokens.iter().map(|(id, _)| ibyok::ids::TokenId::parse(id).unwrap()).collect();
    let mut revoked = 0;
    for chunk in ids.chunks(100) {
        let fetched = w
            .env
            .dyn_store()
            .fetch(&ibyok::store::Fetch { tokens: chunk.to_vec(), usage: true, ..Default::default() })
            .await
            .unwrap();
        revoked += fetched.tokens.values().filter(|t| t.revoked_at.is_some()).count();
    }
    assert_eq!(revoked, 1000);
    let notices = w.notices.0.lock().unwrap().clone();
    assert_eq!(notices.iter().map(|n| n.tokens.len()).sum::<usize>(), 1000);
    assert!(notices.iter().all(|n| n.tokens.len() <= ibyok::notify::MAX_LEAKED_PER_NOTICE));
    assert!(took < Duration::from_secs(20), "past the functions' 20 s timeout: {took:?}");
}

#[tokio::test]
async fn reports_naming_tokens_are_limited_per_minute_across_the_deployment() {
    use ibyok::scanning::REPORTS_PER_MINUTE;
    // GIVEN the start of a UTC minute.
    let w = world_with(None).await;
    let to_next_minute = 60 - (ibyok::clock::Clock::now(w.env.clock.as_ref()).seconds() % 60);
    w.env.clock.advance_seconds(to_next_minute);
    let token_shaped = ibyok::token::ParsedToken::generate();
    let t = token_shaped.secret().expose_token();
    // WHEN more reports naming a token-shaped string come than the limit
    // allows, THEN the ones past it are 429 with Retry-After.
    for i in 0..REPORTS_PER_MINUTE {
        let (status, _) = w.report(&[t]).await;
        assert_eq!(status, 200, "report {i}");
    }
    let b = body(&[t]);
    let r = w.env.call(report(&b, Some("k-current"), Some(&w.key.sign(&b)))).await.expect_error(429, "rate_limited");
    assert!(r.raw.header("retry-after").is_some());
    // A report with no token-shaped string costs nothing, and is not counted.
    assert_eq!(w.report(&["ghp_not_ours"]).await.0, 200);
    // AND the next minute, reports pass again.
    w.env.clock.advance_seconds(60);
    assert_eq!(w.report(&[t]).await.0, 200);
}
