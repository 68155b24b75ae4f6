//! Load: 200 concurrent clients against `ibyok dev` for 30 s (set
//! IBYOK_LOAD_SECONDS to change): zero errors, and the usage counters equal
//! the successful reads exactly. Prints the throughput it saw.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn two_hundred_clients_for_thirty_seconds_without_an_error() {
    let seconds: u64 = std::env::var("IBYOK_LOAD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ibyok"))
        .args(["dev", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let token = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .find_map(|l| l.strip_prefix("Root token: ").map(str::to_owned))
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines().map(Result::unwrap);
    let url =
        lines.find_map(|l| l.strip_prefix("Listening on ").map(|r| r.split(' ').next().unwrap().to_owned())).unwrap();
    std::thread::spawn(move || for _ in lines {});
    let auth = format!("Bearer {token}");
    let created: serde_json::Value = ureq::post(&format!("{url}/keys"))
        .set("authorization", &auth)
        .send_json(serde_json::json!({"name": "load", "llmType": "openai", "value": "sk-load-test-value-0000"}))
        .unwrap()
        .into_json()
        .unwrap();
    let key = created["keyId"].as_str().unwrap().to_owned();

    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let (ok, errors, auth) = (ok.clone(), errors.clone(), auth.clone());
            let path = format!("{url}/external/keys/{key}/value?env={}", if i % 2 == 0 { "prod" } else { "dev" });
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
                while Instant::now() < deadline {
                    match agent.get(&path).set("authorization", &auth).call() {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (ok, errors) = (ok.load(Ordering::Relaxed), errors.load(Ordering::Relaxed));
    let usage: serde_json::Value =
        ureq::get(&format!("{url}/usage")).set("authorization", &auth).call().unwrap().into_json().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    println!("load: 200 clients, {elapsed:.1} s, {ok} reads ({:.0}/s), {errors} errors", ok as f64 / elapsed);
    assert_eq!(errors, 0);
    assert!(ok > 0);
    assert_eq!(usage["keys"][0]["retrievals"], ok, "the counter equals the successful reads");
    assert_eq!(usage["tokens"][0]["uses"], ok);
}
