//! The capacity model: what each route would consume on DynamoDB, KMS, the
//! HTTP API and Lambda, per million requests, and the load on the busiest
//! partition key under many readers of one key by one token. The units come
//! from `scripts/capacity.py` (AWS's rules, applied to the items moto holds);
//! run with `scripts/capacity`, which starts moto with the model. Under plain
//! `scripts/test` (no model) this test says so and does nothing.
//!
//! Prices (us-east-1, on-demand): $0.625 per million write units, $0.125 per
//! million read units, KMS $0.03 per 10,000 requests, HTTP API $1.00 per
//! million, Lambda ~$0.25 per million at 256 MB.
//!
//! The OIDC exchange (`POST /auth/oidc`) is measured with its issuer's keys
//! cached, each JWT fresh with its own `jti`, and its units are split by
//! table so that what an exchange writes can be read off.

use ibyok_tests::issuer::{Issuer, SigningKey};
use ibyok_tests::{capacity_ledger as capacity, endpoint, Env, Req};
use serde_json::{json, Value};

const WRU: f64 = 0.625;
const RRU: f64 = 0.125;
const KMS: f64 = 3.00;
const API: f64 = 1.00;
const LAMBDA: f64 = 0.25;

struct Measured {
    name: String,
    rcu: f64,
    wcu: f64,
    kms: f64,
    /// Units per request on the busiest partition key: (partition, rcu, wcu).
    busiest: (String, f64, f64),
    dollars: f64,
}

fn measure(name: &str, n: usize, ledger: &Value, http: bool) -> Measured {
    let n = n as f64;
    let rcu = ledger["rcu"].as_f64().unwrap_or(0.0) / n;
    let wcu = ledger["wcu"].as_f64().unwrap_or(0.0) / n;
    let kms = ledger["kms"].as_object().map_or(0.0, |m| m.values().filter_map(Value::as_f64).sum()) / n;
    let mut busiest = (String::new(), 0.0, 0.0);
    for (p, u) in ledger["partitions"].as_object().into_iter().flatten() {
        let (r, w) = (u["rcu"].as_f64().unwrap_or(0.0) / n, u["wcu"].as_f64().unwrap_or(0.0) / n);
        // Against DynamoDB's per-partition limits (3,000 reads, 1,000 writes).
        if r / 3000.0 + w / 1000.0 > busiest.1 / 3000.0 + busiest.2 / 1000.0 {
            busiest = (p.clone(), r, w);
        }
    }
    let fixed = if http { API + LAMBDA } else { 0.0 };
    let dollars = rcu * RRU + wcu * WRU + kms * KMS + fixed;
    Measured { name: name.to_owned(), rcu, wcu, kms, busiest, dollars }
}

/// An exchange's units per request, table by table (from the ledger's
/// partitions; a `|gsi` suffix is the table's index writes).
fn print_by_table(name: &str, n: usize, ledger: &Value) {
    let mut tables = std::collections::BTreeMap::<String, (f64, f64)>::new();
    for (p, u) in ledger["partitions"].as_object().into_iter().flatten() {
        let mut parts = p.split('|');
        let table = parts.next().unwrap_or("");
        let table = table.rsplit_once('-').map_or(table, |(_, t)| t);
        let name = if p.ends_with("|gsi") { format!("{table} (index)") } else { table.to_owned() };
        let e = tables.entry(name).or_default();
        e.0 += u["rcu"].as_f64().unwrap_or(0.0) / n as f64;
        e.1 += u["wcu"].as_f64().unwrap_or(0.0) / n as f64;
    }
    println!("\n{name}, units per request by table:");
    for (table, (r, w)) in tables {
        println!("  {table:<18} {r:>5.2} read {w:>6.2} write");
    }
}

/// `n` OIDC exchanges (RS256, as GitHub signs) through the tests' local
/// issuer, after one that fetched its keys; the ledger of the `n`.
async fn oidc_exchanges(env: &Env, key_id: &str, n: usize) -> Value {
    use ibyok::clock::Clock;
    const AUDIENCE: &str = "ibyok:capacity";
    const SUBJECT: &str = "repo:acme/app:environment:production";
    let issuer = Issuer::start().await;
    let signing = SigningKey::rsa();
    issuer.publish("k1", &signing);
    let body = json!({"name": "deploy", "kind": "oidc", "issuer": issuer.url, "audience": AUDIENCE,
        "subject": SUBJECT, "boundClaims": {"repository_id": "81234567"},
        "scopes": ["keys:read"], "keyIds": [key_id], "tokenTtl": 900});
    let r = env.call(Req::post("/identities").token(&env.root).json(body)).await.expect(201);
    let identity = r.body["identityId"].as_str().unwrap().to_owned();
    let exchange = || {
        let now = env.clock.now().seconds();
        let claims = json!({"iss": issuer.url, "aud": AUDIENCE, "sub": SUBJECT, "iat": now - 5, "nbf": now - 5,
            "exp": now + 300, "repository_id": "81234567", "jti": ibyok::ids::random_base62(16)});
        let jwt = signing.sign(&json!({"alg": signing.alg(), "kid": "k1", "typ": "JWT"}), &claims);
        env.call(Req::post("/auth/oidc").json(json!({"identityId": identity, "jwt": jwt})))
    };
    exchange().await.expect(201);
    capacity("POST");
    for _ in 0..n {
        exchange().await.expect(201);
    }
    capacity("GET").unwrap()
}

/// People's sign-in, the member signed in once before (bound, with an
/// anchor): `n` times start, callback and session, each phase's ledger, and
/// then `n` requests of the session and of an ordinary token alike.
async fn sign_ins(n: usize) -> Vec<(&'static str, Value)> {
    use ibyok::clock::Clock;
    let issuer = Issuer::start().await;
    let signing = SigningKey::ec();
    issuer.publish("k1", &signing);
    let sign_in = issuer.sign_in("vault", "secret", false);
    let env = Env::builder().config(ibyok::config::Config { sign_in, ..Default::default() }).build().await;
    let invite = json!({"provider": "oidc", "email": "ana@acme.example", "role": "developer"});
    env.call(Req::post("/members").token(&env.root).json(invite)).await.expect(201);
    let mut ledgers = vec![
        ("GET /auth/oidc/start", json!({})),
        ("GET /auth/oidc/callback", json!({})),
        ("POST /auth/session", json!({})),
    ];
    let mut session = String::new();
    for round in 0..=n {
        // Round 0 binds the member and makes its anchor: not counted.
        let counted = round > 0;
        let phase = |i: usize, ledgers: &mut Vec<(&'static str, Value)>| {
            if counted {
                merge(&mut ledgers[i].1, &capacity("GET").unwrap());
            }
        };
        capacity("POST");
        let r = env.call(Req::get("/auth/oidc/start")).await.expect(302);
        phase(0, &mut ledgers);
        let location = r.raw.header("location").unwrap().to_owned();
        let q = ibyok::api::body::parse_query(location.split_once('?').map(|(_, q)| q));
        let p = |k: &str| q.iter().find(|(n, _)| n == k).unwrap().1.clone();
        let cookie = r.raw.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
        let now = env.clock.now().seconds();
        let claims = json!({"iss": issuer.url, "aud": "vault", "sub": "ana", "iat": now, "exp": now + 60,
                            "nonce": p("nonce"), "email": "ana@acme.example", "email_verified": true, "name": "Ana"});
        issuer.answer_id_token(signing.sign(&json!({"alg": "ES256", "kid": "k1"}), &claims));
        let mut callback = Req::get(&format!("/auth/oidc/callback?code=c&state={}", p("state")));
        callback.0.cookie = Some(cookie.clone().into());
        capacity("POST");
        let r = env.call(callback).await.expect(302);
        phase(1, &mut ledgers);
        let code = r.raw.header("location").unwrap().split_once("#signin=").unwrap().1.to_owned();
        let mut redeem = Req::post("/auth/session").json(json!({"code": code}));
        redeem.0.cookie = Some(cookie.into());
        capacity("POST");
        let r = env.call(redeem).await.expect(201);
        phase(2, &mut ledgers);
        session = r.body["token"].as_str().unwrap().to_owned();
    }
    let (_, token) = env.issue(&env.root, json!({"name": "t", "scopes": ["keys:read"]})).await;
    for (name, t) in [("GET /keys, a session", &session), ("GET /keys, a token", &token)] {
        env.call(Req::get("/keys").token(t)).await.expect(200);
        capacity("POST");
        for _ in 0..n {
            env.call(Req::get("/keys").token(t)).await.expect(200);
        }
        ledgers.push((name, capacity("GET").unwrap()));
    }
    ledgers
}

/// Adds ledger `b` into `a` (units, and requests by operation).
fn merge(a: &mut Value, b: &Value) {
    for k in ["rcu", "wcu"] {
        a[k] = json!(a[k].as_f64().unwrap_or(0.0) + b[k].as_f64().unwrap_or(0.0));
    }
    for field in ["requests", "kms"] {
        for (op, c) in b[field].as_object().into_iter().flatten() {
            a[field][op] = json!(a[field][op].as_f64().unwrap_or(0.0) + c.as_f64().unwrap_or(0.0));
        }
    }
    for (p, u) in b["partitions"].as_object().into_iter().flatten() {
        for k in ["rcu", "wcu"] {
            let was = a["partitions"][p][k].as_f64().unwrap_or(0.0);
            a["partitions"][p][k] = json!(was + u[k].as_f64().unwrap_or(0.0));
        }
    }
}

fn print(rows: &[Measured]) {
    println!(
        "\n| route | read units | write units | KMS calls | $ per million | busiest partition key: units per request |"
    );
    println!("|---|---|---|---|---|---|");
    for m in rows {
        let table = m.busiest.0.split('|').next().unwrap_or("");
        let table = table.rsplit('-').next().unwrap_or(table);
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {} ({:.2} r, {:.2} w) |",
            m.name, m.rcu, m.wcu, m.kms, m.dollars, table, m.busiest.1, m.busiest.2
        );
    }
}

#[tokio::test]
async fn the_cost_of_every_route_and_the_busiest_partition() {
    if capacity("GET").is_none() {
        println!("no capacity model at {}: run scripts/capacity", endpoint());
        return;
    }
    let env = Env::new().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-capacity-model-0000000000").await;
    let (token_id, t) = env.issue(&env.root, json!({"name": "fleet", "scopes": ["keys:read"]})).await;
    // Plans: one read of each environment first.
    env.read(&t, &key, "production").await.expect(200);
    env.read(&t, &key, "development").await.expect(200);
    env.settle().await;
    let mut rows = Vec::new();

    // Many readers of one key by one token, concurrently.
    // Enough that the replicas' random shares are near their mean.
    const READS: usize = 1600;
    const READERS: usize = 16;
    for (name, environment) in [("read, live, planned", "production"), ("read, mock, planned", "development")] {
        capacity("POST");
        let mut done = 0;
        while done < READS {
            let batch = (0..READERS).map(|_| env.read(&t, &key, environment));
            for r in futures::future::join_all(batch).await {
                r.expect(200);
            }
            done += READERS;
        }
        rows.push(measure(name, done, &capacity("GET").unwrap(), true));
        // The usage function's share: its writes per read counted.
        capacity("POST");
        env.settle().await;
        let mut agg = measure(
            &format!("  usage function, per {name} (batches of ≤ 500)"),
            done,
            &capacity("GET").unwrap(),
            false,
        );
        agg.dollars += LAMBDA / 500.0;
        rows.push(agg);
    }

    // A token's first read (the full path): a fresh token per read.
    const FIRST: usize = 40;
    let mut fresh = Vec::new();
    for i in 0..FIRST {
        fresh.push(env.issue(&env.root, json!({"name": format!("f{i}"), "scopes": ["keys:read"]})).await.1);
    }
    for (name, environment) in
        [("read, live, a token's first", "staging"), ("read, mock, a token's first", "development")]
    {
        env.call(Req::put("/settings/modes").token(&env.root).json(json!({"staging": "live"}))).await.expect(200);
        capacity("POST");
        for f in &fresh {
            env.read(f, &key, environment).await.expect(200);
        }
        rows.push(measure(name, FIRST, &capacity("GET").unwrap(), true));
    }

    // The other routes, a few times each.
    let other = |name: &'static str, reqs: Vec<Req>| (name, reqs);
    let k = key.clone();
    let cases = vec![
        other(
            "POST /keys",
            (0..10)
                .map(|i| {
                    Req::post("/keys")
                        .json(json!({"name": format!("n{i}"), "llmType": "openai", "value": "sk-another-value-000000"}))
                })
                .collect(),
        ),
        other(
            "PUT /keys/{id}/value",
            (0..10)
                .map(|_| Req::put(&format!("/keys/{k}/value")).json(json!({"value": "sk-capacity-model-0000000000"})))
                .collect(),
        ),
        other("GET /keys/{id}", (0..10).map(|_| Req::get(&format!("/keys/{k}"))).collect()),
        other("GET /keys", (0..10).map(|_| Req::get("/keys")).collect()),
        other(
            "POST /tokens",
            (0..10)
                .map(|i| Req::post("/tokens").json(json!({"name": format!("c{i}"), "scopes": ["keys:read"]})))
                .collect(),
        ),
        other("GET /tokens", (0..10).map(|_| Req::get("/tokens")).collect()),
        other("GET /usage", (0..10).map(|_| Req::get("/usage")).collect()),
        other("GET /usage/daily", (0..10).map(|_| Req::get("/usage/daily")).collect()),
        other("GET /audit", (0..10).map(|_| Req::get("/audit")).collect()),
        other(
            "PUT /settings/modes",
            (0..10)
                .map(|i| Req::put("/settings/modes").json(json!({"staging": if i % 2 == 0 { "mock" } else { "live" }})))
                .collect(),
        ),
    ];
    for (name, reqs) in cases {
        let n = reqs.len();
        capacity("POST");
        for r in reqs {
            let r = env.call(r.token(&env.root)).await;
            assert!(r.status < 300, "{name}: {}", r.text());
        }
        rows.push(measure(name, n, &capacity("GET").unwrap(), true));
    }
    capacity("POST");
    for _ in 0..10 {
        let (id, _) = env.issue(&env.root, json!({"name": "gone", "scopes": ["keys:read"]})).await;
        capacity("POST");
        env.call(Req::delete(&format!("/tokens/{id}")).token(&env.root)).await.expect(204);
        let m = measure("DELETE /tokens/{id}", 1, &capacity("GET").unwrap(), true);
        if rows.last().is_none_or(|r: &Measured| r.name != m.name) {
            rows.push(m);
        }
    }

    // The OIDC exchange, its issuer's keys cached by a first exchange.
    let exchange = oidc_exchanges(&env, &key, 10).await;
    rows.push(measure("POST /auth/oidc (JWKS cached)", 10, &exchange, true));
    // People's sign-in, and what a session's request costs beside a token's.
    const SIGN_INS: usize = 10;
    let signed = sign_ins(SIGN_INS).await;
    println!("\nsign-in, DynamoDB requests per sign-in by operation:");
    for (name, ledger) in &signed {
        let ops: Vec<String> = ledger["requests"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(op, c)| format!("{op} {:.1}", c.as_f64().unwrap_or(0.0) / SIGN_INS as f64))
            .collect();
        println!("  {name:<26} {}", ops.join(", "));
        rows.push(measure(name, SIGN_INS, ledger, true));
    }
    print(&rows);
    print_by_table("POST /auth/oidc", 10, &exchange);
    let cost = |name: &str| rows.iter().find(|r| r.name == name).unwrap();
    let (session, token) = (cost("GET /keys, a session"), cost("GET /keys, a token"));
    assert!(
        (session.rcu - token.rcu).abs() < 1e-9 && (session.wcu - token.wcu).abs() < 1e-9,
        "a session's request costs what a token's does"
    );

    let live = &rows[0];
    let mock = &rows[2];
    let live_total = live.dollars + rows[1].dollars;
    let mock_total = mock.dollars + rows[3].dollars;
    println!("\nper million planned reads, all included: live ${live_total:.2}, mock ${mock_total:.2}");
    for (m, total) in [(live, live_total), (mock, mock_total)] {
        let (p, r, w) = &m.busiest;
        let sustained = ((3000.0 / r.max(1e-9)).min(1000.0 / w.max(1e-9))).floor();
        println!(
            "{}: busiest partition {p}: {r:.2} read / {w:.2} write units a read; at 10,000 reads/s {:.0} / {:.0} units/s \
             (limits 3,000 / 1,000) — {sustained} reads/s of one key by one token",
            m.name,
            r * 10_000.0,
            w * 10_000.0,
        );
        let _ = total;
        // The contract's target: one key and one token sustain 10,000 reads/s.
        assert!(sustained >= 10_000.0, "{}: {sustained} reads/s on {p}", m.name);
    }
    // The contract's budget: at most 8% above the floor.
    assert!(live_total <= 5.50, "live read ${live_total:.2} per million");
    assert!(mock_total <= 2.50, "mock read ${mock_total:.2} per million");
    assert!(live.kms == 1.0 && mock.kms == 0.0, "one Decrypt a live read, none a mock one");
    // An exchange reads the identity, once, and nothing else; it calls no KMS.
    let oidc = cost("POST /auth/oidc (JWKS cached)");
    assert!(oidc.rcu <= 1.0 && oidc.kms == 0.0, "POST /auth/oidc: {} read units, {} KMS calls", oidc.rcu, oidc.kms);
    let _ = token_id;
}
