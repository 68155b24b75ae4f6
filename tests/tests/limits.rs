//! Token rate limits (and, below, the tenant quota): the issuing rules, the
//! headers, the 429s and their audit, and the count under concurrency across
//! several instances sharing one store — on DynamoDB (moto) and in memory.

use ibyok::api::App;
use ibyok::clock::{Clock, ManualClock, SystemClock, Timestamp};
use ibyok::config::Config;
use ibyok::kms::local::LocalKms;
use ibyok::store::dynamo::consumer::UsageStream;
use ibyok::store::memory::MemoryStore;
use ibyok::store::{LimitStore, Store};
use ibyok_tests::{Env, Req, Resp};
use serde_json::json;
use std::sync::Arc;

/// A clock at the start of a UTC minute (plus `into` seconds), so that a
/// test's requests all fall in one minute.
fn minute_start(into: i64) -> Timestamp {
    let now = SystemClock.now().seconds();
    Timestamp::from_millis(((now / 60 + 1) * 60 + into) * 1000)
}

async fn call<S: Store + ?Sized>(app: &App<S>, req: Req) -> Resp {
    Resp::from(app.handle(req.0).await)
}

fn header<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    r.raw.header(name)
}

/// Lets the counters catch up (DynamoDB: the audit stream applied, as the
/// usage function does; the memory store counts at once).
async fn settle(usage: Option<&UsageStream>) {
    if let Some(u) = usage {
        u.drain().await.expect("the audit stream applied");
    }
}

async fn audit_actions<S: Store + ?Sized>(app: &App<S>, root: &str, action: &str) -> usize {
    let r = call(app, Req::get("/audit?limit=100").token(root)).await.expect(200);
    r.body["events"].as_array().unwrap().iter().filter(|e| e["action"] == action).count()
}

/// 200 concurrent reads by a token limited to 50 a minute, spread over
/// `apps` (instances sharing one store), after each instance has served the
/// token once in an earlier minute (so that plans and known limits are in
/// play): exactly 50 are served, the rest answer 429 `rate_limited`, one
/// `auth.limited` event is written, and the key's counter holds exactly the
/// reads served.
async fn two_hundred_concurrent_requests_get_exactly_fifty<S: Store + ?Sized>(
    apps: &[App<S>],
    clock: &ManualClock,
    root: &str,
    usage: Option<&UsageStream>,
) {
    let app = &apps[0];
    let r =
        call(app, Req::post("/keys").token(root).json(json!({"name": "k", "llmType": "openai", "value": "sk-live-1"})))
            .await
            .expect(201);
    let key = r.body["keyId"].as_str().unwrap().to_owned();
    let body = json!({"name": "limited", "scopes": ["keys:read"], "rateLimit": 50});
    let r = call(app, Req::post("/tokens").token(root).json(body)).await.expect(201);
    assert_eq!(r.body["rateLimit"], 50);
    let token = r.body["token"].as_str().unwrap().to_owned();
    let read = |i: usize| Req::get(&format!("/external/keys/{key}/value?env={}", ["prod", "dev"][i % 2])).token(&token);
    // One read per instance and environment in this minute: plans and
    // known limits everywhere.
    for a in apps {
        call(a, read(0)).await.expect(200);
        call(a, read(1)).await.expect(200);
    }
    clock.advance_seconds(60);
    settle(usage).await;
    let before =
        call(app, Req::get("/usage").token(root)).await.expect(200).body["keys"][0]["retrievals"].as_u64().unwrap();

    let answers = futures::future::join_all((0..200).map(|i| call(&apps[i % apps.len()], read(i)))).await;
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let limited: Vec<&Resp> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok, 50, "statuses: {:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert_eq!(limited.len(), 150);
    for r in &limited {
        assert_eq!(r.code(), "rate_limited", "{}", r.text());
        assert!(!r.text().contains("sk-live-1"));
        let retry: i64 = header(r, "retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry));
        assert_eq!(header(r, "ratelimit-limit"), Some("50"));
        assert_eq!(header(r, "ratelimit-remaining"), Some("0"));
    }
    for r in answers.iter().filter(|r| r.status == 200) {
        assert_eq!(header(r, "ratelimit-limit"), Some("50"));
        let remaining: u32 = header(r, "ratelimit-remaining").unwrap().parse().unwrap();
        assert!(remaining < 50);
        assert!(header(r, "ratelimit-reset").is_some());
    }
    settle(usage).await;
    let after =
        call(app, Req::get("/usage").token(root)).await.expect(200).body["keys"][0]["retrievals"].as_u64().unwrap();
    assert_eq!(after - before, 50, "refused reads are taken back from the counters");
    assert_eq!(audit_actions(app, root, "auth.limited").await, 1, "one auth.limited event a token and minute");
    assert_eq!(audit_actions(app, root, "key.read").await, 50 + 2 * apps.len());

    // The next minute starts afresh.
    clock.advance_seconds(60);
    call(&apps[1 % apps.len()], read(0)).await.expect(200);
}

#[tokio::test]
async fn dynamo_two_hundred_concurrent_requests_over_four_instances_get_exactly_fifty() {
    let env = Env::new().await;
    env.clock.set(minute_start(1));
    let apps: Vec<_> = (0..4).map(|_| env.app_with(Config::default(), &env.kms_key_id)).collect();
    two_hundred_concurrent_requests_get_exactly_fifty(&apps, &env.clock, &env.root, Some(&env.usage)).await;
}

async fn memory_apps(n: usize) -> (Vec<App<MemoryStore>>, Arc<ManualClock>, String) {
    let store = Arc::new(MemoryStore::new());
    let kms = Arc::new(LocalKms::ephemeral());
    let clock = Arc::new(ManualClock::new(minute_start(1)));
    let apps: Vec<App<MemoryStore>> =
        (0..n).map(|_| App::new(store.clone(), kms.clone(), Config::default()).with_clock(clock.clone())).collect();
    let root = ibyok::bootstrap::create_tenant(store.as_ref(), "mem", clock.now())
        .await
        .unwrap()
        .token
        .expose_token()
        .to_owned();
    (apps, clock, root)
}

#[tokio::test]
async fn memory_two_hundred_concurrent_requests_over_four_instances_get_exactly_fifty() {
    let (apps, clock, root) = memory_apps(4).await;
    two_hundred_concurrent_requests_get_exactly_fifty(&apps, &clock, &root, None).await;
}

#[tokio::test]
async fn every_route_counts_and_answers_the_headers_unlimited_tokens_get_none() {
    let env = Env::new().await;
    env.clock.set(minute_start(30));
    let (_, limited) = env.issue(&env.root, json!({"name": "l", "scopes": ["usage:read"], "rateLimit": 3})).await;
    // A route the token may call, one it may not (403 counts too), another.
    let reqs = [Req::get("/usage"), Req::get("/keys"), Req::get("/audit")];
    let mut remaining = Vec::new();
    for req in reqs {
        let r = env.call(req.token(&limited)).await;
        assert_eq!(header(&r, "ratelimit-limit"), Some("3"), "{}", r.text());
        assert_eq!(header(&r, "ratelimit-reset"), Some("30"));
        remaining.push(header(&r, "ratelimit-remaining").unwrap().to_owned());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let r = env.call(Req::get("/usage").token(&limited)).await.expect_error(429, "rate_limited");
    assert_eq!(header(&r, "retry-after"), Some("30"));
    assert!(header(&r, "ibyok-token-expires-at").is_some());
    // Unlimited: no headers, never 429.
    for _ in 0..5 {
        let r = env.call(Req::get("/usage").token(&env.root)).await.expect(200);
        assert!(header(&r, "ratelimit-limit").is_none());
    }
    // A bad token is 401 without rate headers, whatever its limit.
    let r = env.call(Req::get("/usage").token("ibyok_nope")).await.expect(401);
    assert!(header(&r, "ratelimit-limit").is_none());
}

#[tokio::test]
async fn rate_limits_are_inherited_capped_and_listed() {
    let env = Env::new().await;
    let (_, parent) =
        env.issue(&env.root, json!({"name": "p", "scopes": ["tokens:write", "keys:read"], "rateLimit": 100})).await;
    let mk = |body| Req::post("/tokens").token(&parent).json(body);
    let r = env.call(mk(json!({"name": "inherits", "scopes": ["keys:read"]}))).await.expect(201);
    assert_eq!(r.body["rateLimit"], 100);
    let r = env.call(mk(json!({"name": "lower", "scopes": ["keys:read"], "rateLimit": 10}))).await.expect(201);
    assert_eq!(r.body["rateLimit"], 10);
    let r = env.call(mk(json!({"name": "null", "scopes": ["keys:read"], "rateLimit": null}))).await.expect(201);
    assert_eq!(r.body["rateLimit"], 100, "null is not given: inherited");
    let r = env.call(mk(json!({"name": "higher", "scopes": ["keys:read"], "rateLimit": 101}))).await;
    let r = r.expect_error(403, "forbidden");
    assert!(r.text().contains("rateLimit"));
    let r = env.call(Req::post("/tokens").token(&env.root).json(json!({"name": "u", "scopes": ["keys:read"]}))).await;
    assert_eq!(r.expect(201).body["rateLimit"], json!(null));
    let listed = env.call(Req::get("/tokens").token(&env.root)).await.expect(200);
    let limits: Vec<_> = listed.body["tokens"].as_array().unwrap().iter().map(|t| t["rateLimit"].clone()).collect();
    assert!(limits.contains(&json!(10)) && limits.contains(&json!(null)), "{limits:?}");
}

#[tokio::test]
async fn bad_rate_limits_are_400_naming_the_field() {
    let env = Env::new().await;
    for bad in [json!(0), json!(100_001), json!(-1), json!(1.5), json!(60.0), json!("60"), json!([60]), json!(true)] {
        let body = json!({"name": "n", "scopes": ["keys:read"], "rateLimit": bad});
        let r = env.call(Req::post("/tokens").token(&env.root).json(body)).await.expect_error(400, "invalid_request");
        assert!(r.text().contains("rateLimit"), "{bad}: {}", r.text());
    }
    for good in [1, 100_000] {
        let body = json!({"name": "n", "scopes": ["keys:read"], "rateLimit": good});
        env.call(Req::post("/tokens").token(&env.root).json(body)).await.expect(201);
    }
}

/// The request a refused token's next request is (the planned path is
/// skipped): it reads, never writes.
#[tokio::test]
async fn a_token_refused_in_this_minute_is_refused_without_counting_again() {
    let env = Env::new().await;
    env.clock.set(minute_start(0));
    let key = env.add_key(&env.root, "k", "anthropic", "sk-ant-1").await;
    let (_, t) = env.issue(&env.root, json!({"name": "l", "scopes": ["keys:read"], "rateLimit": 1})).await;
    env.read(&t, &key, "prod").await.expect(200);
    for _ in 0..3 {
        env.read(&t, &key, "prod").await.expect_error(429, "rate_limited");
    }
    let counter = env
        .dynamo
        .scan()
        .table_name(&env.tables.limits)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
        .into_iter()
        .map(|i| i["n"].as_n().unwrap().parse::<u32>().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(counter, [2], "the count stops at limit + 1");
}

// ------------------------------------------------------------------ quota

async fn usage_quota<S: Store + ?Sized>(app: &App<S>, root: &str) -> serde_json::Value {
    call(app, Req::get("/usage").token(root)).await.expect(200).body["quota"].clone()
}

async fn tenant_of<S: Store + ?Sized>(app: &App<S>, root: &str) -> ibyok::ids::TenantId {
    // The root token's tenant, by the tag of a key id minted in it.
    let body = json!({"name": "probe", "llmType": "openai", "value": "sk-probe"});
    let r = call(app, Req::post("/keys").token(root).json(body)).await.expect(201);
    ibyok::ids::KeyId::parse(r.body["keyId"].as_str().unwrap()).unwrap().tenant_hint()
}

/// N reads succeed and read N+1 is refused, on the full and the planned
/// path, mock and live; `GET /usage` reports it; `--unlimited` lifts it.
async fn the_quota_refuses_read_n_plus_one<S: Store + ?Sized>(
    app: &App<S>,
    store: &S,
    root: &str,
    usage: Option<&UsageStream>,
) {
    let tenant = tenant_of(app, root).await;
    assert_eq!(usage_quota(app, root).await, json!(null), "no quota: null");
    let body = json!({"name": "k", "llmType": "groq", "value": "gsk-live-value-1"});
    let key = call(app, Req::post("/keys").token(root).json(body)).await.expect(201).body["keyId"]
        .as_str()
        .unwrap()
        .to_owned();
    store.set_quota(&tenant, Some(5)).await.unwrap();
    for i in 0..5 {
        let env = ["prod", "dev"][i % 2];
        let r = call(app, Req::get(&format!("/external/keys/{key}/value?env={env}")).token(root)).await;
        r.expect(200);
    }
    let r = call(app, Req::get(&format!("/external/keys/{key}/value?env=prod")).token(root)).await;
    let r = r.expect_error(429, "quota_exceeded");
    assert!(!r.text().contains("gsk-live-value-1"));
    let retry: i64 = header(&r, "retry-after").unwrap().parse().unwrap();
    let now = SystemClock.now();
    let resets = ibyok::clock::Month::of(now).next().start();
    assert!((retry - (resets.seconds() - now.seconds())).abs() <= 5, "retry-after {retry}");
    let q = usage_quota(app, root).await;
    assert_eq!(q["readsPerMonth"], 5);
    assert_eq!(q["used"], 5);
    assert_eq!(q["resetsAt"], resets.rfc3339());
    settle(usage).await;
    let listed = call(app, Req::get("/usage").token(root)).await.expect(200).body;
    let retrievals: u64 = listed["keys"].as_array().unwrap().iter().map(|k| k["retrievals"].as_u64().unwrap()).sum();
    assert_eq!(retrievals, 5, "the refused read is taken back");
    store.set_quota(&tenant, None).await.unwrap();
    assert_eq!(usage_quota(app, root).await, json!(null));
    // (An environment with no plan: a plan keeps its quota up to a minute.)
    call(app, Req::get(&format!("/external/keys/{key}/value?env=staging")).token(root)).await.expect(200);
}

#[tokio::test]
async fn dynamo_the_quota_refuses_read_n_plus_one() {
    let env = Env::new().await;
    env.clock.set(SystemClock.now());
    the_quota_refuses_read_n_plus_one(&env.app, env.store.as_ref(), &env.root, Some(&env.usage)).await;
}

#[tokio::test]
async fn memory_the_quota_refuses_read_n_plus_one() {
    let (apps, clock, root) = memory_apps(1).await;
    clock.set(SystemClock.now());
    let store = apps[0].store.clone();
    the_quota_refuses_read_n_plus_one(&apps[0], store.as_ref(), &root, None).await;
}

/// 60 concurrent reads over three instances against a quota of 20: the
/// bound written in the README is "served ≤ quota + reads in flight"; this
/// adapter serves exactly the quota (the count is one conditional write).
async fn concurrent_reads_stop_at_the_quota<S: Store + ?Sized>(
    apps: &[App<S>],
    clock: &ManualClock,
    store: &S,
    root: &str,
) {
    let tenant = tenant_of(&apps[0], root).await;
    let body = json!({"name": "k", "llmType": "openai", "value": "sk-live-2"});
    let key = call(&apps[0], Req::post("/keys").token(root).json(body)).await.expect(201).body["keyId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Plans on every instance first, then the quota.
    for a in apps {
        call(a, Req::get(&format!("/external/keys/{key}/value?env=prod")).token(root)).await.expect(200);
    }
    store.set_quota(&tenant, Some(20 + apps.len() as u64)).await.unwrap();
    // Plans made before the quota serve for at most a minute: past it.
    clock.advance_seconds(61);
    let in_flight = 60;
    let answers = futures::future::join_all((0..in_flight).map(|i| {
        let env = ["prod", "dev", "staging"][i % 3];
        call(&apps[i % apps.len()], Req::get(&format!("/external/keys/{key}/value?env={env}")).token(root))
    }))
    .await;
    let ok = answers.iter().filter(|r| r.status == 200).count();
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_eq!(r.code(), "quota_exceeded", "{}", r.text());
    }
    assert!(ok <= 20 + apps.len() + in_flight, "the README's bound");
    assert_eq!(ok, 20 + apps.len(), "exact: one conditional write per read");
    assert_eq!(usage_quota(&apps[0], root).await["used"], json!(20 + apps.len()));
}

#[tokio::test]
async fn dynamo_concurrent_reads_stop_at_the_quota() {
    let env = Env::new().await;
    let apps: Vec<_> = (0..3).map(|_| env.app_with(Config::default(), &env.kms_key_id)).collect();
    concurrent_reads_stop_at_the_quota(&apps, &env.clock, env.store.as_ref(), &env.root).await;
}

#[tokio::test]
async fn memory_concurrent_reads_stop_at_the_quota() {
    let (apps, clock, root) = memory_apps(3).await;
    let store = apps[0].store.clone();
    concurrent_reads_stop_at_the_quota(&apps, &clock, store.as_ref(), &root).await;
}

/// A plan made before the operator set a quota serves for at most a
/// minute; after that the read is counted.
#[tokio::test]
async fn a_quota_reaches_planned_reads_within_a_minute() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-3").await;
    env.read(&env.root, &key, "prod").await.expect(200);
    env.store.set_quota(&env.tenant, Some(1)).await.unwrap();
    env.clock.advance_seconds(61);
    env.read(&env.root, &key, "prod").await.expect(200);
    env.read(&env.root, &key, "prod").await.expect_error(429, "quota_exceeded");
    env.read(&env.root, &key, "dev").await.expect_error(429, "quota_exceeded");
}

#[test]
fn a_quota_is_split_over_up_to_eight_shards_that_add_up_to_it() {
    use ibyok::store::dynamo::quota_shares;
    assert_eq!(quota_shares(0), [0]);
    assert_eq!(quota_shares(5), [5]);
    assert_eq!(quota_shares(10_000), [10_000]);
    assert_eq!(quota_shares(10_001), [5_001, 5_000]);
    assert_eq!(quota_shares(80_000), [10_000; 8]);
    assert_eq!(quota_shares(1_000_003), [125_001, 125_001, 125_001, 125_000, 125_000, 125_000, 125_000, 125_000]);
    for q in [1, 9_999, 10_001, 33_333, 79_999, 80_001, 12_345_678] {
        assert_eq!(quota_shares(q).iter().sum::<u64>(), q);
    }
}

/// A sharded quota (80,000: eight shards of 10,000) with every shard full
/// but one, which has two left: of 12 concurrent reads exactly two are
/// counted, whichever shard each starts at; the sum is the quota.
#[tokio::test]
async fn dynamo_a_sharded_quota_admits_exactly_what_is_left() {
    use ibyok::clock::Month;
    use ibyok::store::dynamo::quota_counter_id;
    let env = Env::new().await;
    let month = Month::of(env.clock.now());
    for i in 0..8 {
        let n = if i == 5 { 9_998 } else { 10_000 };
        env.dynamo
            .put_item()
            .table_name(&env.tables.limits)
            .item("counterId", aws_sdk_dynamodb::types::AttributeValue::S(quota_counter_id(&env.tenant, month, i)))
            .item("n", aws_sdk_dynamodb::types::AttributeValue::N(n.to_string()))
            .send()
            .await
            .unwrap();
    }
    let store = env.store.as_ref();
    assert_eq!(store.quota_used(&env.tenant, month).await.unwrap(), 79_998);
    let calls = (0..12).map(|_| store.count_quota_read(&env.tenant, month, 80_000));
    let got: Vec<bool> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(got.iter().filter(|c| **c).count(), 2, "{got:?}");
    assert_eq!(store.quota_used(&env.tenant, month).await.unwrap(), 80_000);
    store.uncount_quota_read(&env.tenant, month).await.unwrap();
    assert_eq!(store.quota_used(&env.tenant, month).await.unwrap(), 79_999);
    assert!(store.count_quota_read(&env.tenant, month, 80_000).await.unwrap());
    assert!(!store.count_quota_read(&env.tenant, month, 80_000).await.unwrap());
    // A raised quota admits more at once.
    assert!(store.count_quota_read(&env.tenant, month, 80_008).await.unwrap());
}
