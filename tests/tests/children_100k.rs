//! The data model at full size: one token issues 100,000 short-lived children over
//! time, cleanup running between, through the DynamoDB adapter on moto with
//! the capacity model (`scripts/capacity.py`). A benchmark, not part of
//! `scripts/test`: run it with `scripts/bench-children`
//! (`IBYOK_BENCH_CHILDREN=2000 scripts/bench-children` for a quick run).
//!
//! It prints figures per batch of 1,000 issues (write and read units per
//! issue from the ledger, wall time per issue, the issuer's item size, the
//! tokens and children tables' item counts after cleanup) and asserts only
//! properties, never timings: every issue answers 201, the issuer's item is
//! the same size after every batch, cleanup leaves the tables as they were,
//! and an issue costs the same write units at the end as at the start.

use aws_sdk_dynamodb::types::TimeToLiveSpecification;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, DeleteRequest, KeySchemaElement, KeyType, ScalarAttributeType, Select,
    WriteRequest,
};
use ibyok::store::schema::{EVENT_KEY, TENANT_ID, TTL};
use ibyok_tests::{capacity_ledger, endpoint, item_bytes, raw_token, Env, Req};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Issues between two cleanups.
const BATCH: usize = 1_000;

/// A time budget, `IBYOK_BENCH_MINUTES` (default none): the run stops after
/// the first batch that ends past it, and reports what it issued.
fn budget() -> Option<Duration> {
    let v = std::env::var("IBYOK_BENCH_MINUTES").ok()?;
    Some(Duration::from_secs_f64(v.parse::<f64>().expect("IBYOK_BENCH_MINUTES") * 60.0))
}

/// How many children to issue: `IBYOK_BENCH_CHILDREN`, default 100,000.
fn children() -> usize {
    let n = std::env::var("IBYOK_BENCH_CHILDREN").map_or(100_000, |v| v.parse().expect("IBYOK_BENCH_CHILDREN"));
    assert!(n >= BATCH && n.is_multiple_of(BATCH), "IBYOK_BENCH_CHILDREN: a multiple of {BATCH}");
    n
}

struct Batch {
    /// The batch's first issue, from 1.
    first: usize,
    wcu: f64,
    rcu: f64,
    took: Duration,
    cleanup: Duration,
    cleanup_wcu: f64,
    issuer_bytes: usize,
    tokens: usize,
    children: usize,
    /// Answers other than 201 in this batch: (status, error code).
    refused: Vec<(u16, String)>,
}

const HEADER: &str = "| issues | write units / issue | read units / issue | ms / issue | cleanup s | \
    cleanup write units / child | issuer bytes | tokens | children | non-201 |\n|---|---|---|---|---|---|---|---|---|---|";

impl Batch {
    /// The batch as a table row, `label` before its issues.
    fn row(&self, label: &str) -> String {
        format!(
            "| {label}{}{}–{} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} | {} | {} | {} | {} |",
            if label.is_empty() { "" } else { ": " },
            self.first,
            self.first + BATCH - 1,
            self.wcu,
            self.rcu,
            self.took.as_secs_f64() * 1000.0 / BATCH as f64,
            self.cleanup.as_secs_f64(),
            self.cleanup_wcu,
            self.issuer_bytes,
            self.tokens,
            self.children,
            self.refused.len(),
        )
    }
}

fn units(ledger: &Value, kind: &str) -> f64 {
    ledger[kind].as_f64().unwrap_or(0.0)
}

async fn issuer_bytes(env: &Env, id: &str) -> usize {
    item_bytes(&raw_token(env, id).await.expect("the issuer's item"))
}

async fn count(env: &Env, table: &str) -> usize {
    let (mut total, mut start) = (0, None);
    loop {
        let page = env
            .dynamo
            .scan()
            .table_name(table)
            .select(Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        total += page.count as usize;
        start = page.last_evaluated_key;
        if start.is_none() {
            return total;
        }
    }
}

/// The audit table, recreated without its stream. moto keeps every stream
/// record for ever and copies them with the table in each transaction that
/// touches it (measured: 0.04 s a copy at 2,000 records, 0.3 s at 10,000),
/// and an issue's transaction writes its audit event: with the stream, an
/// issue would cost moto time in proportion to every issue before it. On
/// DynamoDB a stream costs a write nothing; issuing never reads it.
async fn audit_without_stream(env: &Env) {
    let table = &env.tables.audit;
    env.dynamo.delete_table().table_name(table).send().await.expect("delete the audit table");
    let attr = |name: &str| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap()
    };
    let key = |name: &str, ty| KeySchemaElement::builder().attribute_name(name).key_type(ty).build().unwrap();
    env.dynamo
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(TENANT_ID))
        .attribute_definitions(attr(EVENT_KEY))
        .key_schema(key(TENANT_ID, KeyType::Hash))
        .key_schema(key(EVENT_KEY, KeyType::Range))
        .send()
        .await
        .expect("create the audit table");
    let ttl = TimeToLiveSpecification::builder().attribute_name(TTL).enabled(true).build().unwrap();
    env.dynamo.update_time_to_live().table_name(table).time_to_live_specification(ttl).send().await.unwrap();
}

/// Deletes every audit event. The audit table gains one event per issue and
/// moto copies it whole in each issue's transaction (for the rollback), so
/// a growing table would make each issue slower on moto (not on DynamoDB).
/// Emptied after every batch, as `bench/lambda_bench.py` (`trim_audit`)
/// does every 500 invocations, the run stays linear. Not part of the
/// measured window: the ledger is read before.
async fn empty_audit(env: &Env) {
    let table = &env.tables.audit;
    let mut keys = Vec::new();
    let mut start = None;
    loop {
        let page = env
            .dynamo
            .scan()
            .table_name(table)
            .projection_expression("#t, #e")
            .expression_attribute_names("#t", TENANT_ID)
            .expression_attribute_names("#e", EVENT_KEY)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        keys.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    for chunk in keys.chunks(25) {
        let mut pending: Vec<WriteRequest> = chunk
            .iter()
            .map(|k| {
                let delete = DeleteRequest::builder().set_key(Some(k.clone())).build().unwrap();
                WriteRequest::builder().delete_request(delete).build()
            })
            .collect();
        while !pending.is_empty() {
            let out = env.dynamo.batch_write_item().request_items(table, pending).send().await.unwrap();
            pending = out.unprocessed_items.and_then(|mut m| m.remove(table.as_str())).unwrap_or_default();
        }
    }
}

#[tokio::test]
#[ignore = "a benchmark (an hour or more at 100,000): scripts/bench-children"]
async fn one_token_issues_a_hundred_thousand_children() {
    let n = children();
    assert!(capacity_ledger("POST").is_some(), "no capacity model at {}: run scripts/bench-children", endpoint());
    let env = Env::new().await;
    audit_without_stream(&env).await;
    let (issuer_id, issuer) = env
        .issue(&env.root, json!({"name": "ci", "scopes": ["tokens:write", "keys:read"], "expiresIn": 864_000}))
        .await;
    let before = issuer_bytes(&env, &issuer_id).await;
    let started = Instant::now();
    let mut batches: Vec<Batch> = Vec::new();
    println!("issuing {n} children from one token, cleanup every {BATCH}");
    println!("{HEADER}");
    for r in 0..n / BATCH {
        let mut refused = Vec::new();
        capacity_ledger("POST");
        let t0 = Instant::now();
        for _ in 0..BATCH {
            let resp = env
                .call(
                    Req::post("/tokens")
                        .token(&issuer)
                        .json(json!({"name": "job", "scopes": ["keys:read"], "expiresIn": 60})),
                )
                .await;
            if resp.status != 201 {
                refused.push((resp.status, resp.code().to_owned()));
            }
        }
        let took = t0.elapsed();
        let issued = capacity_ledger("GET").expect("the ledger");
        // The children expire; cleanup runs between batches.
        env.clock.advance_seconds(61);
        capacity_ledger("POST");
        let t1 = Instant::now();
        let report = cleanup::handler(env.store.as_ref(), None, env.clock.as_ref()).await.unwrap();
        let cleanup = t1.elapsed();
        let cleaned = capacity_ledger("GET").expect("the ledger");
        assert_eq!(report.tokens.deleted, BATCH - refused.len(), "batch {r}: cleanup deleted every expired child");
        empty_audit(&env).await;
        let batch = Batch {
            first: r * BATCH + 1,
            wcu: units(&issued, "wcu") / BATCH as f64,
            rcu: units(&issued, "rcu") / BATCH as f64,
            took,
            cleanup,
            cleanup_wcu: units(&cleaned, "wcu") / BATCH as f64,
            issuer_bytes: issuer_bytes(&env, &issuer_id).await,
            tokens: count(&env, &env.tables.tokens).await,
            children: count(&env, &env.tables.children).await,
            refused,
        };
        println!("{}", batch.row(""));
        batches.push(batch);
        if budget().is_some_and(|b| started.elapsed() > b) {
            println!("stopped at the time budget (IBYOK_BENCH_MINUTES) after {} of {n}", batches.len() * BATCH);
            break;
        }
    }
    let total = started.elapsed();
    let n = batches.len() * BATCH;
    let (first, middle, last) = (&batches[0], &batches[batches.len() / 2], &batches[batches.len() - 1]);
    println!(
        "\n{n} children in {:.1} min ({:.1} ms an issue with cleanup and the audit trimming); issuer item {before} bytes before the first child",
        total.as_secs_f64() / 60.0,
        total.as_secs_f64() * 1000.0 / n as f64
    );
    println!("{HEADER}");
    for (name, r) in [("start", first), ("middle", middle), ("end", last)] {
        println!("{}", r.row(name));
    }
    let odd: Vec<_> = batches.iter().filter(|r| r.wcu != first.wcu || r.rcu != first.rcu).map(|r| r.first).collect();
    if !odd.is_empty() {
        println!("batches whose units differ from the first's: {odd:?}");
    }

    let refused: Vec<_> = batches.iter().flat_map(|r| r.refused.iter().map(move |x| (r.first, x))).collect();
    assert!(refused.is_empty(), "answers other than 201: {refused:?}");
    assert_eq!(first.issuer_bytes, before + "issued".len() + 1, "only the constant mark");
    assert!(batches.iter().all(|r| r.issuer_bytes == first.issuer_bytes), "the issuer's item never grows");
    // The root, the issuer; the issuer's own entry under the root.
    assert!(batches.iter().all(|r| (r.tokens, r.children) == (2, 1)), "cleanup leaves only the root and the issuer");
    assert_eq!(last.wcu, first.wcu, "an issue costs the same write units at the end as at the start");
}
