//! Counters from the audit stream on DynamoDB (moto): `GET /usage` and
//! `GET /usage/daily` after the usage function applied the stream, exact
//! when batches are delivered again, deleted keys keeping their counts.

use ibyok::clock::Clock;
use ibyok_tests::{Env, Req};
use serde_json::json;

#[tokio::test]
async fn daily_usage_counts_reads_per_day_key_and_token() {
    let env = Env::new().await;
    let a = env.add_key(&env.root, "a", "openai", "sk-daily-a-000000").await;
    let b = env.add_key(&env.root, "b", "groq", "gsk-daily-b-00000").await;
    let (tid, t) = env.issue(&env.root, json!({"name": "reader", "scopes": ["keys:read"]})).await;
    let day1 = ibyok::usage::Day::of(env.clock.now());
    for _ in 0..3 {
        env.read(&t, &a, "development").await.expect(200);
    }
    env.read(&env.root, &b, "production").await.expect(200);
    env.clock.advance_seconds(86_400);
    let day2 = day1.plus_days(1);
    env.read(&t, &a, "production").await.expect(200);
    env.settle().await;
    // The last batch delivered again, with a read written since: each read
    // counts once.
    env.read(&t, &b, "development").await.expect(200);
    env.usage.redeliver_last().await.unwrap();
    env.usage.redeliver_last().await.unwrap();
    env.settle().await;

    let q = format!("/usage/daily?from={day1}&to={day2}");
    let r = env.call(Req::get(&q).token(&env.root)).await.expect(200);
    assert_eq!(r.body["days"], json!([day1.to_string(), day2.to_string()]));
    assert_eq!(r.body["total"], json!([4, 2]));
    let find = |list: &str, field: &str, id: &str| {
        r.body[list].as_array().unwrap().iter().find(|x| x[field] == json!(id)).cloned().unwrap_or(json!(null))
    };
    assert_eq!(find("keys", "keyId", &a), json!({"keyId": a, "name": "a", "reads": [3, 1]}));
    assert_eq!(find("keys", "keyId", &b)["reads"], json!([1, 1]));
    assert_eq!(find("tokens", "tokenId", &tid), json!({"tokenId": tid, "name": "reader", "reads": [3, 2]}));
    let usage = env.call(Req::get("/usage").token(&env.root)).await.expect(200);
    let total: u64 = usage.body["keys"].as_array().unwrap().iter().map(|k| k["retrievals"].as_u64().unwrap()).sum();
    assert_eq!(total, 6, "GET /usage agrees");

    // Narrowed to one key or token.
    let one = env.call(Req::get(&format!("{q}&keyId={a}")).token(&env.root)).await.expect(200);
    assert_eq!(one.body["total"], json!([3, 1]));
    assert_eq!(one.body["keys"].as_array().unwrap().len(), 1);
    assert!(one.body["tokens"].as_array().unwrap().is_empty());
    let one = env.call(Req::get(&format!("{q}&tokenId={tid}")).token(&env.root)).await.expect(200);
    assert_eq!(one.body["total"], json!([3, 2]));

    // The default range: the last 30 days, ending today.
    let d = env.call(Req::get("/usage/daily").token(&env.root)).await.expect(200);
    assert_eq!(d.body["days"].as_array().unwrap().len(), 30);
    assert_eq!(d.body["days"][29], json!(day2.to_string()));
    assert_eq!(d.body["total"][29], json!(2));

    // A deleted key keeps its counts, its name null.
    env.call(Req::delete(&format!("/keys/{b}")).token(&env.root)).await.expect(204);
    let r = env.call(Req::get(&q).token(&env.root)).await.expect(200);
    let gone = r.body["keys"].as_array().unwrap().iter().find(|k| k["keyId"] == json!(b)).unwrap().clone();
    assert_eq!(gone, json!({"keyId": b, "name": null, "reads": [1, 1]}));
    env.call(Req::get(&format!("{q}&keyId={b}")).token(&env.root)).await.expect(200);
}

#[tokio::test]
async fn daily_usage_refuses_bad_ranges_and_others_ids() {
    let env = Env::new().await;
    let key = env.add_key(&env.root, "a", "openai", "sk-daily-a-000000").await;
    let today = ibyok::usage::Day::of(env.clock.now());
    let (tomorrow, long_ago) = (today.plus_days(1), today.plus_days(-90));
    for (q, field) in [
        (format!("from={tomorrow}"), "from"),
        (format!("to={tomorrow}"), "to"),
        (format!("from={today}&to={}", today.plus_days(-1)), "from"),
        (format!("from={long_ago}&to={today}"), "from"),
        ("from=2026-13-01".to_owned(), "from"),
        ("to=yesterday".to_owned(), "to"),
        (format!("keyId={key}&tokenId=tok_x"), "tokenId"),
    ] {
        let r = env
            .call(Req::get(&format!("/usage/daily?{q}")).token(&env.root))
            .await
            .expect_error(400, "invalid_request");
        let message = r.body["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.starts_with(&format!("{field}:")), "{q}: {message}");
    }
    let ninety = format!("/usage/daily?from={}&to={today}", today.plus_days(-89));
    let r = env.call(Req::get(&ninety).token(&env.root)).await.expect(200);
    assert_eq!(r.body["days"].as_array().unwrap().len(), 90, "90 days is the most");
    let (_, other_root) = env.other_tenant().await;
    let theirs = env.add_key(&other_root, "theirs", "openai", "sk-theirs-00000000").await;
    env.call(Req::get(&format!("/usage/daily?keyId={theirs}")).token(&env.root)).await.expect_error(404, "not_found");
    env.call(Req::get("/usage/daily?tokenId=tok_nobody").token(&env.root)).await.expect_error(404, "not_found");
    let (_, reader) = env.issue(&env.root, json!({"name": "r", "scopes": ["keys:read"]})).await;
    env.call(Req::get("/usage/daily").token(&reader)).await.expect_error(403, "forbidden");
}
