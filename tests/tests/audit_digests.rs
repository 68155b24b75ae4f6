//! The verifiable audit log on moto, through the DynamoDB adapter and KMS:
//! the cleanup function's digest run signs each shard's new events with an
//! `ECC_NIST_P256` key; `GET /audit` and `GET /audit/digests` give the
//! verifier (`ibyok audit verify`'s code) what it needs; events edited,
//! deleted, inserted and reordered straight in the table are each named,
//! with their shard and time; a digest re-signed with another key fails;
//! a deleted digest is a gap. Also the figures: what the digests cost per
//! million events, and how long an event stays undigested.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use ibyok::api::App;
use ibyok::clock::Clock;
use ibyok::config::Config;
use ibyok::digest::{self, Finding, FindingKind, VerifyOptions, VerifyReport};
use ibyok::kms::aws::{AwsKms, AwsSigner};
use ibyok::kms::Signer;
use ibyok::store::dynamo::DynamoStore;
use ibyok::store::{audit_shard, AuditStore};
use ibyok_tests::{Env, Req};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

type Item = HashMap<String, AttributeValue>;

/// A fresh `ECC_NIST_P256` signing key in moto's KMS.
async fn signing_key(env: &Env) -> String {
    let key = env
        .kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .description("ibyok audit digests (test)")
        .send()
        .await
        .unwrap();
    key.key_metadata().unwrap().key_id().to_owned()
}

/// The service with the signer's public key published, as the account
/// function runs it.
fn app(env: &Env, signer: Arc<AwsSigner>) -> App<DynamoStore> {
    App::new(env.store.clone(), Arc::new(AwsKms::new(env.kms.clone(), env.kms_key_id.clone())), Config::default())
        .with_clock(env.clock.clone())
        .with_audit_signer(Some(signer))
}

/// The cleanup function's digest run, at the test's clock.
async fn digest_run(env: &Env, signer: &AwsSigner) -> digest::DigestReport {
    cleanup::digest(env.store.as_ref(), signer, env.clock.as_ref(), 90).await.unwrap()
}

/// What `ibyok audit verify` does, through the API: every digest, every
/// event, `ibyok::digest::verify`.
async fn verify(app: &App<DynamoStore>, token: &str, now: ibyok::clock::Timestamp) -> VerifyReport {
    let call = |path: String| async move {
        let resp = app.handle(Req::get(&path).token(token).0).await;
        assert_eq!(resp.status, 200, "{path}");
        serde_json::from_slice::<serde_json::Value>(resp.body.expose()).unwrap()
    };
    let mut digests = Vec::new();
    let mut key = None;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/audit/digests?limit=10&cursor={c}"),
            None => "/audit/digests?limit=10".to_owned(),
        };
        let page = call(path).await;
        assert_eq!(page["algorithm"], "ECDSA_SHA_256");
        key = key.or_else(|| digest::public_key_from_listing(&page));
        digests.extend(page["digests"].as_array().unwrap().iter().map(|d| digest::digest_from_listing(d).unwrap()));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/audit?limit=100&cursor={c}"),
            None => "/audit?limit=100".to_owned(),
        };
        let page = call(path).await;
        events.extend(page["events"].as_array().unwrap().iter().map(|e| digest::event_from_listing(e).unwrap()));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let o = VerifyOptions { now, from_start: true, max_age_seconds: Some(26 * 3600) };
    digest::verify(&events, &digests, &key.expect("a published public key"), o)
}

/// The tenant's audit items, straight from the table, by event id.
async fn audit_items(env: &Env) -> BTreeMap<String, Item> {
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let resp = env.dynamo.scan().table_name(&env.tables.audit).set_exclusive_start_key(start).send().await.unwrap();
        for item in resp.items.unwrap_or_default() {
            let partition = item["tenantId"].as_s().unwrap();
            if partition.starts_with(env.tenant.as_str()) {
                let id = item["eventKey"].as_s().unwrap().split_once('#').unwrap().1.to_owned();
                out.insert(id, item);
            }
        }
        start = resp.last_evaluated_key;
        if start.is_none() {
            return out;
        }
    }
}

fn at_of(item: &Item) -> i64 {
    item["at"].as_n().unwrap().parse().unwrap()
}

/// Some reads, one second apart, each writing its audit event.
async fn some_reads(env: &Env, key: &str, n: usize) {
    for _ in 0..n {
        env.read(&env.root, key, "dev").await.expect(200);
        env.clock.advance_seconds(1);
    }
}

async fn moto_setup() -> (Env, Arc<AwsSigner>, App<DynamoStore>) {
    let env = Env::new().await;
    let signer = Arc::new(AwsSigner::new(env.kms.clone(), signing_key(&env).await));
    let app = app(&env, signer.clone());
    (env, signer, app)
}

fn kinds(findings: &[Finding]) -> Vec<(FindingKind, u32, i64, Option<String>)> {
    findings.iter().map(|f| (f.kind, f.shard, f.at.millis(), f.event_id.clone())).collect()
}

#[tokio::test]
async fn an_untouched_log_verifies_and_each_change_in_the_table_is_named() {
    // GIVEN a log of reads, digested by the cleanup run
    let (env, signer, app) = moto_setup().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-digest-0000").await;
    some_reads(&env, &key, 48).await;
    env.clock.advance_seconds(digest::SETTLE_SECONDS);
    let run = digest_run(&env, &signer).await;
    let items = audit_items(&env).await;
    assert_eq!(run.events, items.len(), "every event settled is digested: {run:?}");
    // Every shard starts its chain, empty or not (so an insert anywhere is caught).
    assert_eq!(run.digests, ibyok::store::schema::AUDIT_SHARDS as usize, "{run:?}");

    // THEN an untouched log verifies
    let clean = verify(&app, &env.root, env.clock.now()).await;
    assert!(clean.findings.is_empty(), "{:#?}", clean.findings);
    assert_eq!(clean.events_checked, items.len());
    assert_eq!(clean.uncovered, 0);

    // WHEN one event's field is edited, one deleted, one inserted and two
    // of one shard reordered, straight in the table
    let mut by_shard: BTreeMap<u32, Vec<(String, Item)>> = BTreeMap::new();
    for (id, item) in &items {
        by_shard.entry(audit_shard(id)).or_default().push((id.clone(), item.clone()));
    }
    // Two events of one shard at different times (events of the same
    // millisecond, such as the key's creation and its first read, would
    // swap nothing).
    let (pair_shard, (swap_a, swap_b)) = by_shard
        .iter()
        .find_map(|(shard, v)| {
            v.iter()
                .enumerate()
                .find_map(|(i, a)| {
                    v[i + 1..].iter().find(|b| at_of(&b.1) != at_of(&a.1)).map(|b| (a.clone(), b.clone()))
                })
                .map(|pair| (*shard, pair))
        })
        .expect("a shard with two events at different times");
    let others: Vec<(String, Item)> =
        items.iter().filter(|(id, _)| audit_shard(id) != pair_shard).map(|(i, x)| (i.clone(), x.clone())).collect();
    let (edited, deleted, template) = (others[0].clone(), others[1].clone(), others[2].clone());

    let table = &env.tables.audit;
    let key_of = |item: &Item| {
        HashMap::from([
            ("tenantId".to_owned(), item["tenantId"].clone()),
            ("eventKey".to_owned(), item["eventKey"].clone()),
        ])
    };
    // Edit: the source address.
    env.dynamo
        .update_item()
        .table_name(table)
        .set_key(Some(key_of(&edited.1)))
        .update_expression("SET sourceIp = :ip")
        .expression_attribute_values(":ip", AttributeValue::S("203.0.113.66".into()))
        .send()
        .await
        .unwrap();
    // Delete.
    env.dynamo.delete_item().table_name(table).set_key(Some(key_of(&deleted.1))).send().await.unwrap();
    // Insert: a copy of an event under a new id, a millisecond later, in
    // the new id's shard (inside a digested range).
    let inserted_id = ibyok::ids::new_event_id();
    let inserted_at = at_of(&template.1) + 1;
    let inserted_shard = audit_shard(&inserted_id);
    let mut forged = template.1.clone();
    forged.insert("tenantId".into(), AttributeValue::S(format!("{}#{inserted_shard:02}", env.tenant)));
    forged.insert("eventKey".into(), AttributeValue::S(format!("{inserted_at:015}#{inserted_id}")));
    forged.insert("at".into(), AttributeValue::N(inserted_at.to_string()));
    forged.insert("requestId".into(), AttributeValue::S("forged".into()));
    env.dynamo.put_item().table_name(table).set_item(Some(forged)).send().await.unwrap();
    // Reorder: two events of one shard exchange their times.
    let (at_a, at_b) = (at_of(&swap_a.1), at_of(&swap_b.1));
    for (item, at) in [(&swap_a.1, at_b), (&swap_b.1, at_a)] {
        env.dynamo
            .update_item()
            .table_name(table)
            .set_key(Some(key_of(item)))
            .update_expression("SET #at = :at")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
            .send()
            .await
            .unwrap();
    }

    // THEN verify names each, with its shard and its time
    let report = verify(&app, &env.root, env.clock.now()).await;
    let mut want = vec![
        (FindingKind::Changed, audit_shard(&edited.0), at_of(&edited.1), Some(edited.0.clone())),
        (FindingKind::Deleted, audit_shard(&deleted.0), at_of(&deleted.1), Some(deleted.0.clone())),
        (FindingKind::Inserted, inserted_shard, inserted_at, Some(inserted_id.clone())),
        (FindingKind::Reordered, pair_shard, at_a, Some(swap_a.0.clone())),
        (FindingKind::Reordered, pair_shard, at_b, Some(swap_b.0.clone())),
    ];
    want.sort_by_key(|(k, s, at, _)| (*s, *at, *k));
    assert_eq!(kinds(&report.findings), want, "{:#?}", report.findings);
    for f in &report.findings {
        println!("finding: {:?} shard {} at {} ({}) {}", f.kind, f.shard, f.at.rfc3339(), f.at.millis(), f.detail);
    }
}

#[tokio::test]
async fn a_digest_re_signed_with_another_key_fails() {
    // GIVEN a digested log
    let (env, signer, app) = moto_setup().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-digest-1111").await;
    some_reads(&env, &key, 6).await;
    env.clock.advance_seconds(digest::SETTLE_SECONDS);
    assert!(digest_run(&env, &signer).await.digests > 0);
    assert!(verify(&app, &env.root, env.clock.now()).await.findings.is_empty());

    // WHEN one digest is re-signed with another ECC key (its statement as it was)
    let other = AwsSigner::new(env.kms.clone(), signing_key(&env).await);
    let scan = env.dynamo.scan().table_name(&env.tables.digests).send().await.unwrap();
    let mut item = scan.items.unwrap_or_default().into_iter().next().expect("a digest item");
    let statement = item["statement"].as_s().unwrap().clone();
    let forged = other.sign(statement.as_bytes()).await.unwrap();
    assert!(other.verify(statement.as_bytes(), &forged).await.unwrap(), "the other key's own signature");
    assert!(!signer.verify(statement.as_bytes(), &forged).await.unwrap(), "KMS Verify refuses it too");
    item.insert("signature".into(), AttributeValue::B(forged.into()));
    env.dynamo.put_item().table_name(&env.tables.digests).set_item(Some(item.clone())).send().await.unwrap();

    // THEN verification fails on that digest, naming its shard and time
    let report = verify(&app, &env.root, env.clock.now()).await;
    let s = digest::parse_statement(&statement).unwrap();
    assert_eq!(kinds(&report.findings), vec![(FindingKind::BadSignature, s.shard, s.through, None)], "{report:#?}");
}

#[tokio::test]
async fn a_deleted_digest_is_a_gap_and_new_events_wait_for_the_next_run() {
    let (env, signer, app) = moto_setup().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-digest-2222").await;
    some_reads(&env, &key, 40).await;
    env.clock.advance_seconds(digest::SETTLE_SECONDS);
    let first = digest_run(&env, &signer).await;
    // Events inside the settle window are not covered yet.
    some_reads(&env, &key, 40).await;
    let report = verify(&app, &env.root, env.clock.now()).await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert!(report.uncovered > 0, "events newer than the last digest: {report:?}");
    env.clock.advance_seconds(digest::SETTLE_SECONDS);
    let second = digest_run(&env, &signer).await;
    assert!(second.digests > 0 && second.events >= 40, "{first:?} {second:?}");
    let report = verify(&app, &env.root, env.clock.now()).await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);

    // A shard's first digest deleted: its successor follows nothing.
    let scan = env.dynamo.scan().table_name(&env.tables.digests).send().await.unwrap();
    let items = scan.items.unwrap_or_default();
    let seq = |i: &Item| i["seq"].as_n().unwrap().parse::<u64>().unwrap();
    let chained = items.iter().find(|i| seq(i) == 1).expect("a shard with two digests");
    let shard_key = chained["digestShard"].clone();
    let first_of_it = items.iter().find(|i| i["digestShard"] == shard_key && seq(i) == 0).unwrap();
    let gone = digest::parse_statement(first_of_it["statement"].as_s().unwrap()).unwrap();
    env.dynamo
        .delete_item()
        .table_name(&env.tables.digests)
        .key("digestShard", shard_key.clone())
        .key("seq", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap();
    let report = verify(&app, &env.root, env.clock.now()).await;
    let gaps: Vec<_> = report.findings.iter().filter(|f| f.kind == FindingKind::Gap).collect();
    assert_eq!(gaps.len(), 1, "{:#?}", report.findings);
    // Named where the missing digest's range ends (its successor's start).
    assert_eq!((gaps[0].shard, gaps[0].at.millis()), (gone.shard, gone.through), "{:#?}", gaps);
    // The deleted digest's events are no longer covered by any digest.
    assert!(report.findings.iter().all(|f| f.kind == FindingKind::Gap), "{:#?}", report.findings);
}

/// DynamoDB's size of an item (attribute names and values, by its rules).
fn item_bytes(item: &Item) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| k.len() + value(v) + 1).sum::<usize>(),
            AttributeValue::L(l) => 3 + l.iter().map(|v| value(v) + 1).sum::<usize>(),
            _ => 0,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

#[tokio::test]
async fn figures_cost_per_million_events_and_the_undigested_window() {
    let (env, signer, app) = moto_setup().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-digest-3333").await;
    // A real read's event, then copies of it under fresh ids in one shard,
    // so that one digest is full (4,000 events, as under load).
    env.read(&env.root, &key, "dev").await.expect(200);
    let page = app.handle(Req::get("/audit?limit=100").token(&env.root).0).await;
    let listed: serde_json::Value = serde_json::from_slice(page.body.expose()).unwrap();
    let read = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "key.read")
        .map(|e| digest::event_from_listing(e).unwrap())
        .unwrap();
    let mut template = read.clone();
    template.tenant_id = Some(env.tenant.clone());
    template.retain_until = Some(env.clock.now().plus_seconds(90 * 86_400));
    let shard = 5;
    let base = env.clock.now().millis();
    let mut writes = Vec::new();
    let mut n = 0;
    while n < digest::MAX_EVENTS + 10 {
        let id = ibyok::ids::new_event_id();
        if audit_shard(&id) != shard {
            continue;
        }
        let e = ibyok::store::AuditEvent {
            event_id: id,
            at: ibyok::clock::Timestamp::from_millis(base + n as i64 * 3),
            ..template.clone()
        };
        n += 1;
        writes.push(e);
    }
    for chunk in writes.chunks(64) {
        futures::future::join_all(chunk.iter().map(|e| env.store.append_audit(e))).await;
    }
    env.clock.set(ibyok::clock::Timestamp::from_millis(base + n as i64 * 3 + digest::SETTLE_SECONDS * 1000 + 1));
    let run = digest_run(&env, &signer).await;
    assert!(run.digests >= 2, "{run:?}");

    let digests = env.dynamo.scan().table_name(&env.tables.digests).send().await.unwrap().items.unwrap_or_default();
    let full = digests
        .iter()
        .filter(|i| i["digestShard"].as_s().unwrap().ends_with(&format!("#{shard:02}")))
        .max_by_key(|i| item_bytes(i))
        .unwrap();
    let full_bytes = item_bytes(full);
    let full_events = digest::parse_statement(full["statement"].as_s().unwrap()).unwrap().count as usize;
    assert_eq!(full_events, digest::MAX_EVENTS);
    let events = audit_items(&env).await;
    let event_bytes = events.values().map(item_bytes).sum::<usize>() as f64 / events.len() as f64;
    let report = verify(&app, &env.root, env.clock.now()).await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);

    // Per digest: one KMS Sign; its write (1 unit per KB) and its index entry (1 unit).
    let digest_wcu = full_bytes.div_ceil(1024) + 1;
    // Per million events in full digests (a busy tenant).
    let digests_per_m = 1_000_000f64 / digest::MAX_EVENTS as f64;
    let wcu_per_m = digests_per_m * digest_wcu as f64;
    // The run reads each event once, consistently (1 unit per 4 KB).
    let rcu_per_m = 1_000_000f64 * event_bytes / 4096.0;
    let sign_price = 0.15 / 10_000.0; // KMS asymmetric (ECC) requests, us-east-1 list price
    let cost = wcu_per_m * 0.625e-6 + rcu_per_m * 0.125e-6 + digests_per_m * sign_price;
    println!(
        "FIGURE digest item with {full_events} events: {full_bytes} bytes ({:.1} bytes an event)",
        full_bytes as f64 / full_events as f64
    );
    println!("FIGURE average event item: {event_bytes:.0} bytes");
    println!("FIGURE per digest: 1 KMS Sign, {digest_wcu} write units (item + by-time index entry)");
    println!(
        "FIGURE per million events (full digests): {digests_per_m:.0} digests = {digests_per_m:.0} Sign, {wcu_per_m:.0} write units, {rcu_per_m:.0} read units: ${cost:.3}"
    );
    // A quiet tenant: at worst one digest per event (each shard's digest
    // holds one), plus a heartbeat per shard a day.
    let single = 1_000_000f64 * (2.0 * 0.625e-6 + sign_price) + 1_000_000f64 * 0.125e-6;
    println!("FIGURE worst case (one event a digest): ${single:.2} per million events; heartbeats: 32 digests a tenant a day");
    // Per run, per tenant: 32 consistent queries of the last digest and 32 of the events.
    println!("FIGURE per run and tenant: 64 queries (>= 64 read units) and one scan of the tenants table");

    // The window: an event just inside the settle window of a run waits for the next.
    env.clock.advance_seconds(1);
    let run_at = env.clock.now();
    let waiting = ibyok::store::AuditEvent {
        event_id: ibyok::ids::new_event_id(),
        at: run_at.plus_seconds(-digest::SETTLE_SECONDS).plus_millis(1),
        ..template.clone()
    };
    env.store.append_audit(&waiting).await.unwrap();
    let r = digest_run(&env, &signer).await;
    assert_eq!(r.events, 0, "inside the settle window: not digested by this run");
    let interval = 3600; // the template's CleanupSchedule default, rate(1 hour)
    env.clock.advance_seconds(interval);
    let r = digest_run(&env, &signer).await;
    assert_eq!(r.events, 1, "digested by the next run");
    let window = env.clock.now().millis() - waiting.at.millis();
    println!(
        "FIGURE largest undigested window: {:.1} min (settle {} s + the schedule's {} s; ibyok dev: settle + --purge-every)",
        window as f64 / 60_000.0,
        digest::SETTLE_SECONDS,
        interval
    );
    assert!(window <= (digest::SETTLE_SECONDS + interval) * 1000);
}

#[tokio::test]
async fn digests_need_usage_read_and_stay_in_their_tenant() {
    let (env, signer, app) = moto_setup().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-digest-4444").await;
    some_reads(&env, &key, 3).await;
    env.clock.advance_seconds(digest::SETTLE_SECONDS);
    digest_run(&env, &signer).await;
    let (_, keys_only) = env.issue(&env.root, json!({"name": "r", "scopes": ["keys:read"]})).await;
    let r = app.handle(Req::get("/audit/digests").token(&keys_only).0).await;
    assert_eq!(r.status, 403);
    let (_, other_root) = env.other_tenant().await;
    let r = app.handle(Req::get("/audit/digests").token(&other_root).0).await;
    let body: serde_json::Value = serde_json::from_slice(r.body.expose()).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(body["digests"].as_array().unwrap().len(), 0, "another tenant's digests: none");
    let r = app.handle(Req::get("/audit/digests?limit=11").token(&env.root).0).await;
    assert_eq!(r.status, 400);
    let r = app.handle(Req::get("/audit/digests?from=yesterday").token(&env.root).0).await;
    assert_eq!(r.status, 400);
}
