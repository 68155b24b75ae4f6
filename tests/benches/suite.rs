//! The benchmark suite (`scripts/bench`): prints a table and writes
//! `target/bench/results.json`. Figures, not assertions.
//!
//! 1. Sequential backend round trips per route: the median latency through a
//!    proxy adding D to every request and new connection, at D = 0 and 40 ms;
//!    (median(40) − median(0)) / 40 ms is the number of round trips, free of
//!    the local server's own speed; the proxy also counts the backend
//!    requests each route sends. Reads are timed twice: repeated by one
//!    token (the planned path) and as each token's first (the full path).
//!    The OIDC exchange is timed with its issuer's keys cached (a first
//!    exchange warms them), each JWT fresh, with its own `jti`.
//! 2. Handler cost in process: a live read on the in-memory store and the
//!    local KMS; token parsing and verification; the OIDC exchange's JWT
//!    checks (RS256 and ES256 signatures, and parse + verify + claims).
//! 3. Cleanup scaling: items read, sequential round trips and time with
//!    10,000 and 100,000 live tokens beside 100 expired ones.
//!
//! `IBYOK_BENCH_ONLY` (a comma list of `handler`, `routes`, `cleanup`;
//! default all) runs only those sections; `IBYOK_BENCH_DELAY_MS` (default
//! 40) is D: a larger one shrinks moto's own jitter against it.

use ibyok::api::{ApiRequest, App};
use ibyok::clock::{Clock, SystemClock};
use ibyok::config::Config;
use ibyok::kms::local::LocalKms;
use ibyok::store::dynamo::DynamoStore;
use ibyok::store::memory::MemoryStore;
use ibyok::store::{LimitStore, TokenStore};
use ibyok_tests::delay::DelayProxy;
use ibyok_tests::issuer::{Issuer, SigningKey};
use ibyok_tests::{endpoint, Env, Req};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Whether `IBYOK_BENCH_ONLY` (default: every section) names `section`.
fn runs(section: &str) -> bool {
    std::env::var("IBYOK_BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

fn iterations() -> usize {
    std::env::var("IBYOK_BENCH_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(15)
}

/// A route to time: `setup` prepares a fresh request (untimed).
struct Case {
    name: &'static str,
    target: Option<f64>,
}

const CASES: [Case; 20] = [
    Case { name: "GET /external/keys/{id}/value (live)", target: Some(2.3) },
    Case { name: "GET /external/keys/{id}/value (mock)", target: Some(1.3) },
    Case { name: "  the same, live, a token's first read", target: None },
    Case { name: "  the same, mock, a token's first read", target: None },
    Case { name: "POST /keys", target: Some(3.3) },
    Case { name: "PUT /keys/{id}/value", target: None },
    Case { name: "GET /keys/{id}", target: None },
    Case { name: "PATCH /keys/{id}", target: None },
    Case { name: "GET /keys", target: None },
    Case { name: "POST /tokens", target: Some(2.3) },
    Case { name: "DELETE /tokens/{id} (no children)", target: Some(2.3) },
    Case { name: "GET /tokens", target: None },
    Case { name: "PUT /settings/modes", target: None },
    Case { name: "GET /usage", target: None },
    Case { name: "live read, rate-limited token (planned)", target: Some(2.3) },
    Case { name: "mock read, rate-limited token (planned)", target: Some(1.3) },
    Case { name: "GET /keys/{id}, rate-limited token", target: None },
    Case { name: "  the same, the token's first request", target: None },
    Case { name: "live read, tenant with a quota (planned)", target: Some(2.3) },
    Case { name: "POST /auth/oidc (RS256, JWKS cached)", target: Some(2.0) },
];

/// The tokens and keys the limit cases use: a token limited to 100,000
/// requests a minute (never refused here), and another tenant with a quota.
struct Limited {
    token: String,
    quota_root: String,
    quota_key: String,
}

async fn limited(env: &Env) -> Limited {
    let body = json!({"name": "limited", "scopes": ["keys:read", "tokens:write"], "rateLimit": 100_000});
    let (_, token) = env.issue(&env.root, body).await;
    let (tenant, quota_root) = env.other_tenant().await;
    env.store.set_quota(&tenant, Some(1_000_000_000)).await.unwrap();
    let quota_key = env.add_key(&quota_root, "q", "openai", "sk-bench-quota-000000").await;
    Limited { token, quota_root, quota_key }
}

/// An OIDC identity of the root token whose issuer (the tests' local one,
/// on loopback: never behind the delay proxy) signs RS256, as GitHub's does.
struct Oidc {
    issuer: Issuer,
    key: SigningKey,
    identity: String,
}

const AUDIENCE: &str = "ibyok:bench";
const SUBJECT: &str = "repo:acme/app:environment:production";

async fn oidc(env: &Env, key_id: &str) -> Oidc {
    let issuer = Issuer::start().await;
    let key = SigningKey::rsa();
    issuer.publish("k1", &key);
    let body = json!({"name": "bench", "kind": "oidc", "issuer": issuer.url, "audience": AUDIENCE,
        "subject": SUBJECT, "boundClaims": {"repository_id": "81234567"},
        "scopes": ["keys:read"], "keyIds": [key_id], "tokenTtl": 600});
    let r = env.call(Req::post("/identities").token(&env.root).json(body)).await;
    assert_eq!(r.status, 201, "POST /identities: {}", r.text());
    let identity = r.body["identityId"].as_str().unwrap().to_owned();
    let oidc = Oidc { issuer, key, identity };
    // The first exchange fetches discovery and the JWKS; the timed ones find them cached.
    let r = env.call(oidc.exchange(env)).await;
    assert_eq!(r.status, 201, "the warming exchange: {}", r.text());
    oidc
}

impl Oidc {
    /// `POST /auth/oidc` with a fresh JWT (its own `jti`) at the env's clock.
    fn exchange(&self, env: &Env) -> Req {
        let now = env.clock.now().seconds();
        let claims = json!({"iss": self.issuer.url, "aud": AUDIENCE, "sub": SUBJECT, "iat": now - 5, "nbf": now - 5,
            "exp": now + 300, "repository_id": "81234567", "jti": ibyok::ids::random_base62(16)});
        let jwt = self.key.sign(&json!({"alg": self.key.alg(), "kid": "k1", "typ": "JWT"}), &claims);
        Req::post("/auth/oidc").json(json!({"identityId": self.identity, "jwt": jwt}))
    }
}

async fn request_for(env: &Env, case: usize, key: &str, n: usize, lim: &Limited, oidc: &Oidc) -> Req {
    let root = &env.root;
    match case {
        0 => Req::get(&format!("/external/keys/{key}/value?env=production")).token(root),
        1 => Req::get(&format!("/external/keys/{key}/value?env=development")).token(root),
        // A fresh token: no plan, the full path.
        2 | 3 => {
            let (_, token) = env.issue(root, json!({"name": "reader", "scopes": ["keys:read"]})).await;
            let e = if case == 2 { "production" } else { "development" };
            Req::get(&format!("/external/keys/{key}/value?env={e}")).token(&token)
        }
        4 => Req::post("/keys")
            .token(root)
            .json(json!({"name": "b", "llmType": "openai", "value": format!("sk-bench-{n}")})),
        5 => Req::put(&format!("/keys/{key}/value")).token(root).json(json!({"value": format!("sk-rot-{n}")})),
        6 => Req::get(&format!("/keys/{key}")).token(root),
        7 => Req::patch(&format!("/keys/{key}")).token(root).json(json!({"name": format!("n{n}")})),
        8 => Req::get("/keys?limit=10").token(root),
        9 => Req::post("/tokens").token(root).json(json!({"name": "b", "scopes": ["keys:read"]})),
        10 => {
            let (id, _) = env.issue(root, json!({"name": "victim", "scopes": ["keys:read"]})).await;
            Req::delete(&format!("/tokens/{id}")).token(root)
        }
        11 => Req::get("/tokens?limit=10").token(root),
        12 => Req::put("/settings/modes").token(root).json(json!({"staging": "mock"})),
        13 => Req::get("/usage").token(root),
        14 => Req::get(&format!("/external/keys/{key}/value?env=production")).token(&lim.token),
        15 => Req::get(&format!("/external/keys/{key}/value?env=development")).token(&lim.token),
        16 => Req::get(&format!("/keys/{key}")).token(&lim.token),
        17 => {
            let body = json!({"name": "limited", "scopes": ["keys:read"], "rateLimit": 100_000});
            let (_, token) = env.issue(root, body).await;
            Req::get(&format!("/keys/{key}")).token(&token)
        }
        18 => Req::get(&format!("/external/keys/{}/value?env=production", lim.quota_key)).token(&lim.quota_root),
        _ => oidc.exchange(env),
    }
}

/// Each route's median time, and its backend requests per call (counted
/// by the proxy).
async fn route_medians(delay: Duration) -> (Vec<f64>, Vec<f64>) {
    let proxy = DelayProxy::start(&endpoint(), delay).await;
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(30))
        .build();
    let env = Env::builder().through(&proxy.url, timeouts).build().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-bench-value-000000").await;
    let lim = limited(&env).await;
    let oidc = oidc(&env, &key).await;
    let (mut out, mut requests) = (Vec::new(), Vec::new());
    for (index, case) in CASES.iter().enumerate() {
        let (mut samples, mut sent) = (Vec::new(), 0);
        for i in 0..iterations() + 3 {
            let req = request_for(&env, index, &key, i, &lim, &oidc).await;
            let before = proxy.requests.load(std::sync::atomic::Ordering::SeqCst);
            let started = Instant::now();
            let r = env.call(req).await;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            assert!(r.status < 400, "{}: {}", case.name, r.text());
            if i >= 3 {
                samples.push(ms);
                sent += proxy.requests.load(std::sync::atomic::Ordering::SeqCst) - before;
            }
        }
        out.push(median(samples));
        requests.push(sent as f64 / iterations() as f64);
    }
    (out, requests)
}

/// CPU per JWT check of `POST /auth/oidc`, in µs: the signature alone, and
/// parse + signature + claims, for a JWT of the shape GitHub issues. Each
/// is the median of 20 batches of 250 (the machine is shared: a batch that
/// another process interrupts is an outlier, not the figure), with the
/// fastest batch beside it.
fn jwt_cost(key: &SigningKey) -> [(f64, f64); 2] {
    use ibyok::identity::jwt::{self, VerifyKey};
    use ibyok::identity::{OidcRule, SubjectMatch};
    let now = SystemClock.now();
    let claims = json!({"iss": "https://token.actions.githubusercontent.com", "aud": AUDIENCE, "sub": SUBJECT,
        "iat": now.seconds() - 5, "nbf": now.seconds() - 5, "exp": now.seconds() + 300,
        "repository": "acme/app", "repository_id": "81234567", "repository_owner": "acme", "ref": "refs/heads/main",
        "environment": "production", "workflow": "deploy", "run_id": "7654321098", "jti": "bench-jti-0000000001"});
    let token = key.sign(&json!({"alg": key.alg(), "kid": "k1", "typ": "JWT"}), &claims);
    let jwk = key.jwk("k1");
    let (_, verify_key) = VerifyKey::from_jwk(jwk.as_object().unwrap()).unwrap();
    let rule = OidcRule {
        issuer: "https://token.actions.githubusercontent.com".into(),
        audience: AUDIENCE.into(),
        subject: SUBJECT.into(),
        subject_match: SubjectMatch::Exact,
        bound_claims: [("repository_id".to_owned(), vec!["81234567".to_owned()])].into(),
    };
    let parsed = jwt::parse(&token).unwrap();
    let verify = || parsed.verify_signature(std::hint::black_box(&verify_key)).unwrap();
    let everything = || {
        let p = jwt::parse(std::hint::black_box(&token)).unwrap();
        p.verify_signature(&verify_key).unwrap();
        jwt::check_claims(&p.claims, &rule, now).unwrap();
    };
    let batches = |f: &dyn Fn()| {
        let per_batch = 250;
        for _ in 0..per_batch {
            f();
        }
        let mut us = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            us.push(started.elapsed().as_secs_f64() * 1e6 / per_batch as f64);
        }
        let fastest = us.iter().copied().fold(f64::INFINITY, f64::min);
        (median(us), fastest)
    };
    [batches(&verify), batches(&everything)]
}

async fn handler_cost() -> (f64, f64) {
    let store = Arc::new(MemoryStore::new());
    let b = ibyok::bootstrap::create_tenant(store.as_ref(), "bench", SystemClock.now()).await.unwrap();
    let app = App::new(store.clone(), Arc::new(LocalKms::ephemeral()), Config::default());
    let token = b.token.expose_token().to_owned();
    let created = app
        .handle(
            Req::post("/keys")
                .token(&token)
                .json(json!({"name": "k", "llmType": "openai", "value": "sk-handler-0000000"}))
                .0,
        )
        .await;
    let key: serde_json::Value = serde_json::from_slice(created.body.expose()).unwrap();
    let path = format!("/external/keys/{}/value", key["keyId"].as_str().unwrap());
    let make = || ApiRequest { query: vec![("env".into(), "production".into())], ..Req::get(&path).token(&token).0 };
    let n = 20_000;
    for _ in 0..1000 {
        app.handle(make()).await;
    }
    let started = Instant::now();
    for _ in 0..n {
        let r = app.handle(make()).await;
        assert_eq!(r.status, 200);
    }
    let read_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;

    let m = 200_000;
    let parsed = ibyok::token::ParsedToken::parse(&token).unwrap();
    let verifier = parsed.verifier();
    let started = Instant::now();
    for _ in 0..m {
        let p = ibyok::token::ParsedToken::parse(std::hint::black_box(&token)).unwrap();
        assert!(p.matches(&verifier));
    }
    let parse_us = started.elapsed().as_secs_f64() * 1e6 / m as f64;
    (read_us, parse_us)
}

/// Cleanup with `live` live tokens beside `expired` expired ones, run twice
/// (the expired tokens seeded afresh for each run).
async fn cleanup_scaling(live: usize, expired: usize) -> Cleanup {
    let env = Env::new().await;
    let now = env.clock.now();
    let seed = |n: usize, expires_in: i64| {
        let items: Vec<_> = (0..n)
            .map(|_| {
                let (mut record, _) = ibyok::bootstrap::root_token(&env.tenant, "bench", now);
                record.grant.expires_at = now.plus_seconds(expires_in);
                ibyok::store::dynamo::token_item(&record)
            })
            .collect();
        let env = &env;
        async move {
            for chunk in items.chunks(25) {
                let writes = chunk
                    .iter()
                    .map(|item| {
                        aws_sdk_dynamodb::types::WriteRequest::builder()
                            .put_request(
                                aws_sdk_dynamodb::types::PutRequest::builder()
                                    .set_item(Some(item.clone()))
                                    .build()
                                    .unwrap(),
                            )
                            .build()
                    })
                    .collect();
                env.dynamo.batch_write_item().request_items(&env.tables.tokens, writes).send().await.unwrap();
            }
        }
    };
    seed(live, 86_400).await;
    // Through the proxy at D = 0 (counting requests), then at D = 40 ms.
    let counting = DelayProxy::start(&endpoint(), Duration::ZERO).await;
    let delayed = DelayProxy::start(&endpoint(), Duration::from_millis(40)).await;
    let mut runs = Vec::new();
    for url in [&counting.url, &delayed.url] {
        seed(expired, -60).await;
        let sdk = ibyok_tests::sdk_config_at(url, None).await;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), env.tables.clone());
        let started = Instant::now();
        let report = store.purge_tokens(env.clock.now()).await.unwrap();
        runs.push((report, started.elapsed().as_secs_f64() * 1000.0));
        assert_eq!(report.deleted, expired);
    }
    Cleanup {
        items_read: runs[0].0.items_read,
        requests: counting.requests.load(std::sync::atomic::Ordering::SeqCst),
        round_trips: (runs[1].1 - runs[0].1) / 40.0,
        millis: runs[0].1,
    }
}

struct Cleanup {
    items_read: usize,
    requests: u64,
    /// (time at D = 40 − time at D = 0) / 40 ms: noisy once moto's own time
    /// (which grows with the table) dominates.
    round_trips: f64,
    millis: f64,
}

#[tokio::main]
async fn main() {
    let mut results = serde_json::Map::new();
    if runs("handler") {
        println!("== handler cost (in process, in-memory store, local KMS)");
        let (read_us, parse_us) = handler_cost().await;
        println!("live read handler: {read_us:.1} µs/request (target ≤ 20)");
        println!("token parse + verify: {parse_us:.2} µs (target ≤ 2)");
        results.insert("handler".into(), json!({"liveReadMicros": read_us, "tokenParseVerifyMicros": parse_us}));
        let mut jwt = serde_json::Map::new();
        for key in [SigningKey::rsa(), SigningKey::ec()] {
            let [(verify_us, verify_min), (all_us, all_min)] = jwt_cost(&key);
            let alg = key.alg();
            println!(
                "OIDC JWT, {alg}: signature verify {verify_us:.1} µs (fastest batch {verify_min:.1}; target ≤ 1,000); \
                 parse + verify + claims {all_us:.1} µs (fastest {all_min:.1})"
            );
            jwt.insert(
                alg.into(),
                json!({"verifyMicros": verify_us, "verifyMicrosFastestBatch": verify_min,
                "parseVerifyClaimsMicros": all_us, "parseVerifyClaimsMicrosFastestBatch": all_min}),
            );
        }
        results.insert("oidcJwt".into(), json!(jwt));
    }

    if runs("routes") {
        println!("\n== sequential backend round trips (delay proxy in front of moto)");
        let d: f64 = std::env::var("IBYOK_BENCH_DELAY_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(40.0);
        let (at0, requests) = route_medians(Duration::ZERO).await;
        let (at_delay, _) = route_medians(Duration::from_millis(d as u64)).await;
        let at_d = format!("D={d} ms");
        println!("{:<40} {:>9} {:>9} {:>12} {:>8} {:>9}", "route", "D=0 ms", at_d, "round trips", "target", "requests");
        let mut rows = Vec::new();
        for (i, case) in CASES.iter().enumerate() {
            let trips = (at_delay[i] - at0[i]) / d;
            let target = case.target.map_or("-".to_owned(), |t| format!("≤ {t}"));
            println!(
                "{:<40} {:>9.1} {:>9.1} {:>12.2} {:>8} {:>9.2}",
                case.name, at0[i], at_delay[i], trips, target, requests[i]
            );
            rows.push(json!({"route": case.name, "medianMsAt0": at0[i], "medianMsAtD": at_delay[i], "delayMs": d,
                "roundTrips": trips, "backendRequests": requests[i], "target": case.target}));
        }
        println!("(requests: backend requests per call, counted by the proxy at D = 0: DynamoDB and KMS)");
        results.insert("roundTrips".into(), json!(rows));
    }

    if !runs("cleanup") {
        write_results(&results);
        return;
    }
    println!("\n== cleanup scaling (100 expired tokens)");
    let max: usize = std::env::var("IBYOK_BENCH_CLEANUP_MAX").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mut cleanup = Vec::new();
    for live in [10_000usize, 100_000].into_iter().filter(|n| *n <= max) {
        let c = cleanup_scaling(live, 100).await;
        println!(
            "{live:>7} live + 100 expired: {} index items read (≤ 200), {} requests, {:.1} sequential round trips, \
             {:.0} ms on moto (which scans the table for an index query)",
            c.items_read, c.requests, c.round_trips, c.millis
        );
        cleanup.push(json!({"live": live, "expired": 100, "itemsRead": c.items_read, "requests": c.requests,
            "roundTrips": c.round_trips, "millisOnMoto": c.millis}));
    }
    results.insert("cleanup".into(), json!(cleanup));
    write_results(&results);
}

fn write_results(results: &serde_json::Map<String, serde_json::Value>) {
    std::fs::create_dir_all("../target/bench").unwrap();
    let path = "../target/bench/results.json";
    std::fs::write(path, serde_json::to_vec_pretty(results).unwrap()).unwrap();
    println!("\nresults written to target/bench/results.json");
}
