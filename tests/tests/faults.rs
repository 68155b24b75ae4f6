//! Fault injection: thousands of mixed operations through a proxy that
//! throttles, fails (before and after the write lands), stalls past the SDK
//! timeouts and drops connections at seeded rates. Every answer must be the
//! right success or 503 `unavailable` with `Retry-After`; afterwards every
//! key holds its last acknowledged value (or a later attempted one whose
//! answer was lost), every acknowledged revocation holds, and every counter
//! holds every successful read and at most the reads whose answer was 503
//! besides (such a read's event may have landed with its answer lost, and
//! its take-back too: see `take_back_read`). Rotations go to the current or a
//! pending version, and pending versions are promoted: an acknowledged
//! promote holds, and a failed one leaves the current version readable.

use ibyok::store::LimitStore;
use ibyok_tests::faults::{FaultProxy, Rates};
use ibyok_tests::{endpoint, Env, Req, Resp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    No,
    Maybe,
    Yes,
}

struct Key {
    id: String,
    acked: String,
    /// Values whose rotation was answered 503: it may have landed.
    pending: Vec<String>,
    /// The acknowledged pending version's value.
    staged: Option<String>,
    /// Pending values answered 503 (they may have landed), and whether a
    /// promote answered 503 since (it may have taken the pending version).
    staged_maybe: Vec<String>,
    promote_maybe: bool,
    deleted: Fate,
    reads: u64,
    /// Reads answered 503: each may have been counted.
    unanswered: u64,
}

struct Token {
    id: String,
    secret: String,
    revoked: Fate,
    reads: u64,
    unanswered: u64,
}

#[derive(Default)]
struct Tally {
    ops: u64,
    ok: u64,
    unavailable: u64,
    /// Promotes answered 200, 409 and 503.
    promotes: [u64; 3],
}

fn unavailable(r: &Resp) -> bool {
    r.status == 503 && r.code() == "unavailable" && r.raw.header("retry-after").is_some()
}

/// A service whose adapters talk to moto through a fault proxy.
async fn through_faults(rates: Rates, seed: u64) -> (FaultProxy, Env) {
    let proxy = FaultProxy::start(&endpoint(), rates, seed, Duration::from_millis(1500)).await;
    // Tighter than Lambda's (1 s / 2 s / 5 s) so that a stalled call costs
    // little here; the same shape: bounded attempts, then 503. An attempt
    // gets a second: moto copies every table a transaction touches (for its
    // rollback), so a read's transaction takes tens of milliseconds once the
    // audit table holds thousands of events, more on a loaded machine.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(300))
        .operation_attempt_timeout(Duration::from_secs(1))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let env = Env::builder().through(&proxy.url, timeouts).build().await;
    (proxy, env)
}

#[tokio::test]
async fn under_injected_faults_answers_are_right_or_503_and_state_stays_consistent() {
    let seed: u64 = std::env::var("IBYOK_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
    let ops: usize = std::env::var("IBYOK_FAULT_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let rates = Rates {
        throttle: 0.05,
        error_before: 0.02,
        error_after: 0.03,
        slow: 0.01,
        drop_before: 0.02,
        drop_after: 0.02,
    };
    let (proxy, env) = through_faults(rates, seed).await;
    let root = env.root.clone();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut keys: Vec<Key> = Vec::new();
    let mut tokens: Vec<Token> = Vec::new();
    let mut tally = Tally::default();
    let mut root_reads: u64 = 0;
    let mut root_unanswered: u64 = 0;

    let mut n = 0u64;
    let mut fresh = |prefix: &str| {
        n += 1;
        format!("{prefix}-{n:06}-value")
    };

    for _ in 0..ops {
        tally.ops += 1;
        let live_keys: Vec<usize> = (0..keys.len()).filter(|i| keys[*i].deleted != Fate::Yes).collect();
        let roll: u32 = rng.gen_range(0..100);
        if live_keys.is_empty() || roll < 10 {
            // Submit.
            let v = fresh("sk-fault");
            let r = env
                .call(Req::post("/keys").token(&root).json(json!({"name": "k", "llmType": "openai", "value": v})))
                .await;
            if r.status == 201 {
                tally.ok += 1;
                keys.push(Key {
                    id: r.body["keyId"].as_str().unwrap().into(),
                    acked: v,
                    pending: vec![],
                    staged: None,
                    staged_maybe: vec![],
                    promote_maybe: false,
                    deleted: Fate::No,
                    reads: 0,
                    unanswered: 0,
                });
            } else {
                assert!(unavailable(&r), "submit: {}", r.text());
                tally.unavailable += 1;
            }
            continue;
        }
        let k = live_keys[rng.gen_range(0..live_keys.len())];
        match roll {
            10..=59 => {
                // Read, with the root or an issued token; live or mock.
                let t =
                    if tokens.is_empty() || rng.gen_bool(0.3) { None } else { Some(rng.gen_range(0..tokens.len())) };
                let secret = t.map_or(root.clone(), |i| tokens[i].secret.clone());
                let env_name = if rng.gen_bool(0.8) { "production" } else { "development" };
                let r = env.read(&secret, &keys[k].id, env_name).await;
                let key = &mut keys[k];
                let revoked = t.map_or(Fate::No, |i| tokens[i].revoked);
                match r.status {
                    200 => {
                        assert_ne!(revoked, Fate::Yes, "a revoked token read a key");
                        let v = r.body["value"].as_str().unwrap();
                        if env_name == "production" {
                            assert!(
                                v == key.acked || key.pending.iter().any(|p| p == v),
                                "read {v}, acked {}",
                                key.acked
                            );
                        } else {
                            assert!(v.starts_with("sk-mock-openai-"));
                        }
                        key.reads += 1;
                        match t {
                            Some(i) => tokens[i].reads += 1,
                            None => root_reads += 1,
                        }
                        tally.ok += 1;
                    }
                    404 if key.deleted == Fate::Maybe => {}
                    401 if revoked != Fate::No => {}
                    _ => {
                        assert!(unavailable(&r), "read: {}", r.text());
                        key.unanswered += 1;
                        match t {
                            Some(i) => tokens[i].unanswered += 1,
                            None => root_unanswered += 1,
                        }
                        tally.unavailable += 1;
                    }
                }
            }
            60..=67 => {
                let v = fresh("sk-rotated");
                let path = format!("/keys/{}/value", keys[k].id);
                let r = env.call(Req::put(&path).token(&root).json(json!({"value": v}))).await;
                let key = &mut keys[k];
                match r.status {
                    200 => {
                        key.acked = v;
                        key.pending.clear();
                        tally.ok += 1;
                    }
                    404 if key.deleted == Fate::Maybe => {}
                    _ => {
                        assert!(unavailable(&r), "rotate: {}", r.text());
                        key.pending.push(v);
                        tally.unavailable += 1;
                    }
                }
            }
            68..=71 => {
                let v = fresh("sk-staged");
                let path = format!("/keys/{}/value", keys[k].id);
                let r = env.call(Req::put(&path).token(&root).json(json!({"value": v, "stage": "pending"}))).await;
                let key = &mut keys[k];
                match r.status {
                    200 => {
                        key.staged = Some(v);
                        key.staged_maybe.clear();
                        key.promote_maybe = false;
                        tally.ok += 1;
                    }
                    404 if key.deleted == Fate::Maybe => {}
                    _ => {
                        assert!(unavailable(&r), "stage: {}", r.text());
                        key.staged_maybe.push(v);
                        tally.unavailable += 1;
                    }
                }
            }
            72..=74 => {
                let path = format!("/keys/{}/promote", keys[k].id);
                let r = env.call(Req::post(&path).token(&root).json(json!({"previousValidFor": 60}))).await;
                let key = &mut keys[k];
                let candidates: Vec<String> = key.staged.iter().chain(&key.staged_maybe).cloned().collect();
                match r.status {
                    200 => {
                        // The current version is now a pending one.
                        assert!(!candidates.is_empty(), "promoted with nothing pending");
                        key.acked = candidates[0].clone();
                        key.pending = candidates;
                        (key.staged, key.promote_maybe) = (None, false);
                        key.staged_maybe.clear();
                        tally.ok += 1;
                        tally.promotes[0] += 1;
                    }
                    409 => {
                        assert!(key.staged.is_none() || key.promote_maybe, "409 with a pending version acknowledged");
                        (key.staged, key.promote_maybe) = (None, false);
                        key.staged_maybe.clear();
                        tally.ok += 1;
                        tally.promotes[1] += 1;
                    }
                    404 if key.deleted == Fate::Maybe => {}
                    _ => {
                        assert!(unavailable(&r), "promote: {}", r.text());
                        tally.promotes[2] += 1;
                        key.pending.extend(candidates);
                        key.promote_maybe = true;
                        tally.unavailable += 1;
                    }
                }
                // Whatever the promote's fate, the current version reads.
                if r.status != 404 {
                    let check = env.read(&root, &key.id, "production").await;
                    if check.status == 200 {
                        let v = check.body["value"].as_str().unwrap();
                        assert!(v == key.acked || key.pending.iter().any(|p| p == v), "after promote: {v}");
                        key.reads += 1;
                        root_reads += 1;
                    } else {
                        assert!(unavailable(&check), "read after promote: {}", check.text());
                        key.unanswered += 1;
                        root_unanswered += 1;
                    }
                }
            }
            75..=84 => {
                let r = env
                    .call(Req::post("/tokens").token(&root).json(json!({"name": "t", "scopes": ["keys:read"]})))
                    .await;
                if r.status == 201 {
                    tokens.push(Token {
                        id: r.body["tokenId"].as_str().unwrap().into(),
                        secret: r.body["token"].as_str().unwrap().into(),
                        revoked: Fate::No,
                        reads: 0,
                        unanswered: 0,
                    });
                    tally.ok += 1;
                } else {
                    assert!(unavailable(&r), "issue: {}", r.text());
                    tally.unavailable += 1;
                }
            }
            85..=92 if !tokens.is_empty() => {
                let i = rng.gen_range(0..tokens.len());
                let r = env.call(Req::delete(&format!("/tokens/{}", tokens[i].id)).token(&root)).await;
                if r.status == 204 {
                    tokens[i].revoked = Fate::Yes;
                    tally.ok += 1;
                } else {
                    assert!(unavailable(&r), "revoke: {}", r.text());
                    if tokens[i].revoked == Fate::No {
                        tokens[i].revoked = Fate::Maybe;
                    }
                    tally.unavailable += 1;
                }
            }
            _ => {
                let r = env.call(Req::delete(&format!("/keys/{}", keys[k].id)).token(&root)).await;
                match r.status {
                    204 => {
                        keys[k].deleted = Fate::Yes;
                        tally.ok += 1;
                    }
                    404 if keys[k].deleted == Fate::Maybe => keys[k].deleted = Fate::Yes,
                    _ => {
                        assert!(unavailable(&r), "delete: {}", r.text());
                        keys[k].deleted = Fate::Maybe;
                        tally.unavailable += 1;
                    }
                }
            }
        }
    }

    let c = &proxy.counts;
    println!(
        "faults: {} ops ({} ok, {} unavailable); {} backend requests, {} faults injected \
         (throttle {}, 500 before {}, 500 after {}, slow {}, drop before {}, drop after {})",
        tally.ops,
        tally.ok,
        tally.unavailable,
        c.requests.load(Ordering::Relaxed),
        c.injected(),
        c.throttle.load(Ordering::Relaxed),
        c.error_before.load(Ordering::Relaxed),
        c.error_after.load(Ordering::Relaxed),
        c.slow.load(Ordering::Relaxed),
        c.drop_before.load(Ordering::Relaxed),
        c.drop_after.load(Ordering::Relaxed),
    );
    println!(
        "promotes: {} ok, {} with nothing pending, {} unavailable",
        tally.promotes[0], tally.promotes[1], tally.promotes[2]
    );
    assert!(c.injected() > 100, "the run saw real faults");
    // Failed promotes are rare at these rates (the SDK's retries absorb
    // most faults); `a_failed_promote_leaves_the_current_version_readable`
    // makes them common.
    assert!(tally.promotes[0] > 0, "promotes acknowledged");
    assert!(tally.ok > tally.ops / 2);

    // Afterwards, without faults, through a clean service straight to moto
    // on the same tables (no proxy, no plans, the harness's patient timeouts).
    proxy.disable();
    let direct = env.app_with(ibyok::config::Config::default(), &env.kms_key_id);
    let clean = &direct;
    let call = |req: Req| async move { Resp::from(clean.handle(req.0).await) };
    let mut verified: u64 = 0;
    for key in &keys {
        let r = call(Req::get(&format!("/external/keys/{}/value?env=production", key.id)).token(&root)).await;
        verified += u64::from(r.status == 200);
        match key.deleted {
            Fate::Yes => assert_eq!(r.status, 404, "{}", r.text()),
            Fate::Maybe if r.status == 404 => {}
            _ => {
                assert_eq!(r.status, 200, "{}", r.text());
                let v = r.body["value"].as_str().unwrap();
                assert!(
                    v == key.acked || key.pending.iter().any(|p| p == v),
                    "{} holds {v}, acked {}",
                    key.id,
                    key.acked
                );
            }
        }
    }
    for t in tokens.iter().filter(|t| t.revoked == Fate::Yes) {
        let r = call(Req::get("/settings/modes").token(&t.secret)).await;
        assert_eq!(r.status, 401, "an acknowledged revocation must hold");
    }
    // The verification reads above counted too: add them to the root's.
    env.settle().await;
    let usage = call(Req::get("/usage").token(&root)).await;
    assert_eq!(usage.status, 200);
    let key_counts: HashMap<String, u64> = usage.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["keyId"].as_str().unwrap().to_owned(), k["retrievals"].as_u64().unwrap_or(0)))
        .collect();
    for key in keys.iter().filter(|k| k.deleted == Fate::No) {
        let counted = key_counts.get(&key.id).copied().unwrap_or(0);
        // The verification read above is one more successful read.
        let (served, unanswered) = (key.reads + 1, key.unanswered);
        assert!(counted >= served, "{}: counted {counted} < {served} successful reads", key.id);
        assert!(
            counted <= served + unanswered,
            "{}: counted {counted} > {served} successful reads + {unanswered} answered 503",
            key.id
        );
    }
    for t in usage.body["tokens"].as_array().unwrap() {
        let uses = t["uses"].as_u64().unwrap_or(0);
        let id = t["tokenId"].as_str().unwrap();
        let (served, unanswered) = match tokens.iter().find(|x| x.id == id) {
            Some(x) => (x.reads, x.unanswered),
            None => (root_reads + verified, root_unanswered),
        };
        assert!(
            uses <= served + unanswered,
            "{id}: {uses} uses > {served} successful reads + {unanswered} answered 503"
        );
    }
}

/// Promotes through a proxy that fails most requests (before and after the
/// write): each answer is 200, 409 or 503; after a 503 the current version
/// is the old one or the promoted one, and reads; after a 200 it is the
/// promoted one. Checked through a clean service on the same tables.
#[tokio::test]
async fn a_failed_promote_leaves_the_current_version_readable() {
    let rates =
        Rates { throttle: 0.0, error_before: 0.25, error_after: 0.25, slow: 0.0, drop_before: 0.05, drop_after: 0.05 };
    let proxy = FaultProxy::start(&endpoint(), rates, 11, Duration::from_millis(300)).await;
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(300))
        .operation_attempt_timeout(Duration::from_secs(1))
        .operation_timeout(Duration::from_secs(3))
        .build();
    let env = Env::builder().through(&proxy.url, timeouts).build().await;
    let clean = env.app_with(ibyok::config::Config::default(), &env.kms_key_id);
    let call = |req: Req| {
        let clean = &clean;
        async move { Resp::from(clean.handle(req.0).await) }
    };
    let root = env.root.clone();
    let key =
        call(Req::post("/keys").token(&root).json(json!({"name": "k", "llmType": "openai", "value": "sk-v-000"})))
            .await
            .expect(201)
            .body["keyId"]
            .as_str()
            .unwrap()
            .to_owned();
    let mut current = "sk-v-000".to_owned();
    let (mut acked, mut failed) = (0, 0);
    for i in 1..=40 {
        let next = format!("sk-v-{i:03}");
        let stage = json!({"value": next, "stage": "pending"});
        call(Req::put(&format!("/keys/{key}/value")).token(&root).json(stage)).await.expect(200);
        let r = env.call(Req::post(&format!("/keys/{key}/promote")).token(&root).json(json!({}))).await;
        let read = call(Req::get(&format!("/external/keys/{key}/value?env=production")).token(&root)).await.expect(200);
        let now = read.body["value"].as_str().unwrap().to_owned();
        match r.status {
            200 => {
                assert_eq!(now, next, "an acknowledged promote holds");
                acked += 1;
            }
            503 => {
                assert!(now == current || now == next, "after a failed promote: {now}");
                failed += 1;
            }
            other => panic!("promote answered {other}: {}", r.text()),
        }
        current = now;
    }
    println!("promotes through faults: {acked} acknowledged, {failed} answered 503");
    assert!(acked > 0 && failed > 0, "both fates seen: {acked} / {failed}");
}

/// A rate limit and a quota under the same faults: every answer is a
/// success, the limit's 429, or a 503; and neither ever lets through more
/// than its number plus the requests in flight (16 here). The counters'
/// writes may be retried after a lost answer, which counts twice and errs
/// on the strict side; a count whose read fails is taken back only when it
/// certainly landed.
#[tokio::test]
async fn under_injected_faults_a_limit_never_admits_more_than_its_number_plus_those_in_flight() {
    let seed: u64 = std::env::var("IBYOK_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(11);
    let rates = Rates {
        throttle: 0.05,
        error_before: 0.03,
        error_after: 0.05,
        slow: 0.01,
        drop_before: 0.02,
        drop_after: 0.05,
    };
    let (proxy, env) = through_faults(rates, seed).await;
    // Setup straight to moto: the faults are for the requests under test.
    let clean = env.app_with(ibyok::config::Config::default(), &env.kms_key_id);
    let setup = |req: Req| async { Resp::from(clean.handle(req.0).await) };
    let body = json!({"name": "k", "llmType": "openai", "value": "sk-limit-0001"});
    let key = setup(Req::post("/keys").token(&env.root).json(body)).await.expect(201).body["keyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"name": "limited", "scopes": ["keys:read", "usage:read"], "rateLimit": 40});
    let limited = setup(Req::post("/tokens").token(&env.root).json(body)).await.expect(201).body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    env.store.set_quota(&env.tenant, Some(25)).await.unwrap();
    const IN_FLIGHT: usize = 16;

    // Rate limit: 160 requests (reads and usage), 16 at a time, in one minute.
    let (mut served, mut limited_429, mut unavailable_503) = (0, 0, 0);
    let mut reads_served = 0;
    for wave in 0..10 {
        let answers = futures::future::join_all((0..IN_FLIGHT).map(|i| {
            let req = if (wave + i) % 2 == 0 {
                Req::get(&format!("/external/keys/{key}/value?env=dev")).token(&limited)
            } else {
                Req::get("/usage").token(&limited)
            };
            env.call(req)
        }))
        .await;
        for r in answers {
            match (r.status, r.code()) {
                (200, _) => {
                    served += 1;
                    if r.body.get("value").is_some() {
                        reads_served += 1;
                    }
                }
                (429, "rate_limited" | "quota_exceeded") => limited_429 += 1,
                _ => {
                    assert!(unavailable(&r), "{}", r.text());
                    unavailable_503 += 1;
                }
            }
        }
    }
    println!("rate limit 40 under faults: {served} served, {limited_429} refused, {unavailable_503} unavailable");
    assert!(served <= 40 + IN_FLIGHT, "{served} served over a limit of 40");
    assert!(reads_served <= 25 + IN_FLIGHT, "{reads_served} reads over a quota of 25");
    assert!(limited_429 > 0, "the limit was reached");

    // Quota: the root (unlimited) reads, 16 at a time, until well past it.
    let mut root_reads = 0;
    for _ in 0..5 {
        let answers = futures::future::join_all((0..IN_FLIGHT).map(|_| env.read(&env.root, &key, "prod"))).await;
        for r in answers {
            match (r.status, r.code()) {
                (200, _) => root_reads += 1,
                (429, "quota_exceeded") => {}
                _ => assert!(unavailable(&r), "{}", r.text()),
            }
        }
    }
    println!("quota 25 under faults: {} reads served", reads_served + root_reads);
    assert!(reads_served + root_reads <= 25 + IN_FLIGHT, "{} reads over a quota of 25", reads_served + root_reads);
    proxy.disable();
    let used = setup(Req::get("/usage").token(&env.root)).await.expect(200).body["quota"]["used"].as_u64().unwrap();
    assert!(used <= 25, "the counter never passes the quota: {used}");
}
