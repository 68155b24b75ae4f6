//! Expiry notices through moto's SNS: the scheduled function publishes each
//! token's notice once, 7 days before its expiry (id, name, tenant, expiry,
//! never a token); a notice that fails to send is sent by the next run.

use ibyok::notify::SnsNotifier;
use ibyok_tests::{sdk_config, Env, Req};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// An HTTP endpoint that records the bodies posted to it (moto delivers an
/// SNS topic's messages to an `http` subscription by POST, before its
/// `Publish` answers).
fn capture() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/notices", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                sink.lock().unwrap().push(v);
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, got)
}

/// A fresh topic on moto, with [`capture`] subscribed to it.
async fn topic() -> (aws_sdk_sns::Client, String, Arc<Mutex<Vec<Value>>>) {
    let sns = aws_sdk_sns::Client::new(&sdk_config().await);
    let topic = sns.create_topic().name(format!("notices-{}", ibyok::ids::random_base62(8))).send().await.unwrap();
    let arn = topic.topic_arn().unwrap().to_owned();
    let (url, got) = capture();
    sns.subscribe().topic_arn(&arn).protocol("http").endpoint(&url).send().await.unwrap();
    (sns, arn, got)
}

#[tokio::test]
async fn each_token_is_noticed_once_seven_days_before_it_expires() {
    let env = Env::new().await;
    let (sns, arn, got) = topic().await;
    let notifier = SnsNotifier::new(sns.clone(), &arn);

    let day = 86_400;
    let (noticed, secret) =
        env.issue(&env.root, json!({"name": "billing", "scopes": ["keys:read"], "expiresIn": 8 * day})).await;
    let (_short, _) = env.issue(&env.root, json!({"name": "ci", "scopes": ["keys:read"], "expiresIn": 3600})).await;
    let (revoked, _) =
        env.issue(&env.root, json!({"name": "gone", "scopes": ["keys:read"], "expiresIn": 8 * day})).await;
    env.call(Req::delete(&format!("/tokens/{revoked}")).token(&env.root)).await.expect(204);

    let run = || cleanup::handler(env.dyn_store(), Some(&notifier), env.clock.as_ref());
    assert_eq!(run().await.unwrap().notified, 0, "not due for another day");
    env.clock.advance_seconds(day + 1);
    assert_eq!(run().await.unwrap().notified, 1, "the live 8-day token; never the 1-hour one or the revoked one");
    assert_eq!(run().await.unwrap().notified, 0, "once, not on every run");
    env.clock.advance_seconds(day);
    assert_eq!(run().await.unwrap().notified, 0, "not daily either");

    let posts = got.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0]["Subject"], ibyok::notify::SUBJECT);
    let message: Value = serde_json::from_str(posts[0]["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message["type"], "ibyok.token.expiring");
    assert_eq!(message["tokenId"], noticed.as_str());
    assert_eq!(message["name"], "billing");
    assert_eq!(message["tenantId"], env.tenant.as_str());
    let listed = env.call(Req::get("/tokens?limit=100").token(&env.root)).await.expect(200);
    let record = listed.body["tokens"].as_array().unwrap().iter().find(|t| t["tokenId"] == noticed.as_str()).unwrap();
    assert_eq!(message["expiresAt"], record["expiresAt"]);
    let text = posts[0].to_string();
    assert!(!text.contains(&secret) && !text.contains("ibyok_"), "never a token: {text}");
}

#[tokio::test]
async fn a_notice_that_fails_to_send_goes_out_on_the_next_run() {
    let env = Env::new().await;
    let (sns, arn, got) = topic().await;
    env.issue(&env.root, json!({"name": "n", "scopes": ["keys:read"], "expiresIn": 7 * 86_400 + 60})).await;
    env.clock.advance_seconds(61);
    // A topic that does not exist: Publish fails, the notice is put back.
    let broken = SnsNotifier::new(sns.clone(), format!("{arn}-missing"));
    let report = cleanup::handler(env.dyn_store(), Some(&broken), env.clock.as_ref()).await.unwrap();
    assert_eq!(report.notified, 0);
    let good = SnsNotifier::new(sns.clone(), &arn);
    let report = cleanup::handler(env.dyn_store(), Some(&good), env.clock.as_ref()).await.unwrap();
    assert_eq!(report.notified, 1);
    assert_eq!(got.lock().unwrap().len(), 1);
    // Without a notifier (no topic configured), nothing is claimed.
    env.issue(&env.root, json!({"name": "m", "scopes": ["keys:read"], "expiresIn": 7 * 86_400 + 60})).await;
    env.clock.advance_seconds(61);
    assert_eq!(cleanup::handler(env.dyn_store(), None, env.clock.as_ref()).await.unwrap().notified, 0);
    let report = cleanup::handler(env.dyn_store(), Some(&good), env.clock.as_ref()).await.unwrap();
    assert_eq!(report.notified, 1);
}
