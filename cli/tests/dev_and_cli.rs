//! `ibyok dev` over real HTTP, and the CLI as a process.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ibyok");

struct Dev {
    child: Child,
    url: String,
    token: String,
    /// The server's log lines after its start (for servers started here).
    log: Option<std::sync::mpsc::Receiver<String>>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_dev(extra: &[&str]) -> Dev {
    start_dev_with(extra, &[])
}

fn start_dev_with(extra: &[&str], env: &[(&str, &str)]) -> Dev {
    let mut child = Command::new(BIN)
        .args(["dev", "--listen", "127.0.0.1:0"])
        .args(extra)
        .envs(env.iter().copied())
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let token = stdout
        .lines()
        .map(Result::unwrap)
        .find_map(|l| l.strip_prefix("Root token: ").map(str::to_owned))
        .expect("a root token line");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines().map(Result::unwrap);
    let url = lines
        .find_map(|l| l.strip_prefix("Listening on ").map(|r| r.split(' ').next().unwrap().to_owned()))
        .expect("a listening line");
    // Keep draining the server's log so that it never blocks on a full pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines {
            let _ = tx.send(l);
        }
    });
    Dev { child, url, token, log: Some(rx) }
}

fn cli(dev: &Dev, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("IBYOK_URL", &dev.url)
        .env("IBYOK_TOKEN", &dev.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn a_full_flow_through_the_cli() {
    let dev = start_dev(&[]);
    assert!(dev.token.starts_with("ibyok_") && dev.token.len() == 44);
    let (code, out, _) = cli(
        &dev,
        &["keys", "add", "--name", "OpenAI", "--llm-type", "openai", "--json"],
        Some("sk-cli-value-123456\n"),
    );
    assert_eq!(code, 0);
    let key = json(&out)["keyId"].as_str().unwrap().to_owned();
    assert!(!out.contains("sk-cli-value"));
    let (code, out, _) = cli(&dev, &["get", &key, "--env", "prod"], None);
    assert_eq!((code, out.as_str()), (0, "sk-cli-value-123456\n"));
    let (_, out, _) = cli(&dev, &["get", &key, "--env", "dev"], None);
    assert!(out.starts_with("sk-mock-openai-"));
    // `run` passes the value in the environment and the exit code through.
    let (code, out, _) = cli(
        &dev,
        &[
            "run",
            "--env-var",
            &format!("OPENAI_API_KEY={key}"),
            "--env",
            "production",
            "--",
            "sh",
            "-c",
            "echo \"$OPENAI_API_KEY\"; exit 7",
        ],
        None,
    );
    assert_eq!((code, out.as_str()), (7, "sk-cli-value-123456\n"));
    // A table for people, JSON for scripts.
    let (_, out, _) = cli(&dev, &["keys", "list"], None);
    assert!(out.lines().next().unwrap().starts_with("KEY ID"));
    assert!(out.contains("OpenAI") && out.contains("just now"));
    let (code, out, _) = cli(&dev, &["tokens", "create", "--name", "ci", "--scope", "keys:read", "--json"], None);
    assert_eq!(code, 0);
    let created = json(&out);
    let ci_token = created["token"].as_str().unwrap().to_owned();
    let ci_id = created["tokenId"].as_str().unwrap().to_owned();
    let ci = Dev { child: Command::new("true").spawn().unwrap(), url: dev.url.clone(), token: ci_token, log: None };
    assert_eq!(cli(&ci, &["get", &key, "--env", "prod"], None).0, 0);
    assert_eq!(cli(&dev, &["tokens", "revoke", &ci_id], None).0, 0);
    let (code, _, err) = cli(&ci, &["get", &key, "--env", "prod"], None);
    assert_eq!(code, 1);
    assert!(err.contains("unauthorized") && err.contains("401"), "{err}");
    let (_, out, _) = cli(&dev, &["usage", "--json"], None);
    assert_eq!(json(&out)["keys"][0]["retrievals"], 4);
    let (_, out, _) = cli(&dev, &["audit", "--json", "--limit", "2"], None);
    assert_eq!(json(&out)["events"].as_array().unwrap().len(), 2);
    let (_, out, _) = cli(&dev, &["settings", "modes", "--set", "staging=live", "--json"], None);
    assert_eq!(json(&out)["staging"], "live");
    let (code, _, err) = cli(&dev, &["keys", "show", "key_missing"], None);
    assert_eq!(code, 1);
    assert!(err.contains("no such key"), "{err}");
    assert_eq!(cli(&dev, &["keys", "rm", &key], None).0, 0);
}

#[test]
fn versions_through_the_cli() {
    let dev = start_dev(&[]);
    let add = ["keys", "add", "--name", "Rotating", "--llm-type", "openai", "--json"];
    let key = json(&cli(&dev, &add, Some("sk-cli-version-one-01\n")).1)["keyId"].as_str().unwrap().to_owned();
    // A pending version, then promoted with the old one kept for an hour.
    let (code, out, _) = cli(&dev, &["keys", "rotate", &key, "--pending", "--json"], Some("sk-cli-version-two-02\n"));
    assert_eq!((code, json(&out)["version"].as_u64()), (0, Some(1)), "current unchanged");
    assert!(!out.contains("sk-cli-version"));
    let get = |version: &str| cli(&dev, &["get", &key, "--env", "prod", "--version", version], None);
    assert_eq!(get("pending").1, "sk-cli-version-two-02\n");
    assert_eq!(get("current").1, "sk-cli-version-one-01\n");
    let (code, out, _) = cli(&dev, &["keys", "promote", &key, "--previous-valid-for", "1h", "--json"], None);
    assert_eq!((code, json(&out)["version"].as_u64()), (0, Some(2)));
    assert_eq!(get("previous").1, "sk-cli-version-one-01\n");
    assert_eq!(get("2").1, "sk-cli-version-two-02\n");
    assert_eq!(cli(&dev, &["get", &key, "--env", "prod"], None).1, "sk-cli-version-two-02\n");
    let (code, _, err) = cli(&dev, &["keys", "promote", &key], None);
    assert_eq!(code, 1);
    assert!(err.contains("conflict") && err.contains("409"), "{err}");
    // A straight rotation keeping v2 for a day.
    let rotate = ["keys", "rotate", &key, "--previous-valid-for", "1d", "--json"];
    let (code, out, _) = cli(&dev, &rotate, Some("sk-cli-version-three-3\n"));
    assert_eq!((code, json(&out)["version"].as_u64()), (0, Some(3)));
    let (_, out, _) = cli(&dev, &["keys", "versions", &key, "--json"], None);
    let listed: Vec<_> = json(&out)["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_u64().unwrap(), v["stage"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(listed, vec![(3, "current".to_owned()), (2, "previous".to_owned())]);
    let (_, out, _) = cli(&dev, &["keys", "versions", &key], None);
    assert!(
        out.lines().next().unwrap().starts_with("VERSION") && out.contains("previous") && out.contains("in 1 day"),
        "{out}"
    );
    assert!(!out.contains("sk-cli-version"));
    assert_eq!(get("1").0, 1, "v1 is gone");
    let (code, _, err) = cli(&dev, &["keys", "rotate", &key, "--pending", "--previous-valid-for", "1h"], None);
    assert_ne!(code, 0, "{err}");
}

#[test]
fn the_dev_server_speaks_the_contract_over_http() {
    let dev = start_dev(&[]);
    let agent = ureq::agent();
    let err = agent.get(&format!("{}/keys", dev.url)).call().unwrap_err();
    let ureq::Error::Status(401, resp) = err else { panic!("expected a 401") };
    assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
    assert!(resp.header("x-request-id").is_some());
    let body: serde_json::Value = resp.into_json().unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let auth = format!("Bearer {}", dev.token);
    let r = agent
        .post(&format!("{}/keys", dev.url))
        .set("authorization", &auth)
        .send_json(serde_json::json!({"name": "n", "llmType": "groq", "value": "gsk-real-value-1234"}))
        .unwrap();
    assert_eq!(r.status(), 201);
    let big = vec![b' '; 70 * 1024];
    let err = agent
        .post(&format!("{}/keys", dev.url))
        .set("authorization", &auth)
        .set("content-type", "application/json")
        .send_bytes(&big)
        .unwrap_err();
    assert!(matches!(err, ureq::Error::Status(413, _)));
    let err = agent.request("PATCH", &format!("{}/usage", dev.url)).set("authorization", &auth).call().unwrap_err();
    assert!(matches!(err, ureq::Error::Status(405, _)));
}

#[test]
fn a_data_dir_survives_a_restart_and_the_token_file_is_private() {
    let dir = std::env::temp_dir().join(format!("ibyok-dev-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let token_file = dir.join("token");
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data");
    let args = ["--data-dir", data.to_str().unwrap(), "--token-file", token_file.to_str().unwrap()];
    let key = {
        let dev = start_dev(&args);
        assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), dev.token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (_, out, _) =
            cli(&dev, &["keys", "add", "--name", "k", "--llm-type", "openai", "--json"], Some("sk-persisted-1234567"));
        json(&out)["keyId"].as_str().unwrap().to_owned()
    };
    let dev = start_dev(&args);
    let (code, out, _) = cli(&dev, &["get", &key, "--env", "production"], None);
    assert_eq!((code, out.trim()), (0, "sk-persisted-1234567"));
    let stored = std::fs::read_to_string(data.join("store.json")).unwrap();
    assert!(!stored.contains("sk-persisted"), "the data file holds only envelopes");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The live root tokens of the dev tenant, as the API lists them.
fn live_roots(dev: &Dev) -> Vec<String> {
    let listed = ureq::get(&format!("{}/tokens?state=live&limit=100", dev.url))
        .set("authorization", &format!("Bearer {}", dev.token))
        .call()
        .unwrap()
        .into_json::<serde_json::Value>()
        .unwrap();
    listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["issuedBy"].is_null())
        .map(|t| t["tokenId"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_data_dir_is_private_and_restarts_keep_one_live_root_token() {
    let dir = std::env::temp_dir().join(format!("ibyok-dev-roots-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    let args = ["--data-dir", data.to_str().unwrap()];
    // A token issued by the root, to see that nothing here revokes it.
    let (first, child) = {
        let dev = start_dev(&args);
        let (code, out, _) = cli(&dev, &["tokens", "create", "--name", "app", "--scope", "keys:read", "--json"], None);
        assert_eq!(code, 0, "{out}");
        (dev.token.clone(), json(&out)["token"].as_str().unwrap().to_owned())
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700, "the data folder");
        for file in ["store.json", "master.key", "root-token"] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
    }
    // Three restarts: the same root token each time, and it alone is live.
    for _ in 0..3 {
        let dev = start_dev(&args);
        assert_eq!(dev.token, first, "the previous start's root token is reused");
        assert_eq!(live_roots(&dev).len(), 1);
    }
    // A folder whose kept token is gone (as earlier versions left them): a
    // new root token, and the earlier one revoked; what it issued still reads.
    std::fs::remove_file(data.join("root-token")).unwrap();
    let dev = start_dev(&args);
    assert_ne!(dev.token, first);
    assert_eq!(live_roots(&dev).len(), 1, "one live root token");
    let old = ureq::get(&format!("{}/tokens", dev.url)).set("authorization", &format!("Bearer {first}")).call();
    assert!(matches!(old, Err(ureq::Error::Status(401, _))), "the earlier root token is revoked");
    let app = ureq::get(&format!("{}/keys", dev.url)).set("authorization", &format!("Bearer {child}")).call();
    assert_eq!(app.unwrap().status(), 200, "a token the earlier root issued keeps working");
    drop(dev);
    let again = start_dev(&args);
    assert_eq!(live_roots(&again).len(), 1);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dev_refuses_to_run_inside_lambda_and_on_conflicting_guardrails() {
    let out = Command::new(BIN)
        .args(["dev", "--listen", "127.0.0.1:0"])
        .env("AWS_LAMBDA_FUNCTION_NAME", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Lambda"));
    let out = Command::new(BIN)
        .args(["dev", "--listen", "127.0.0.1:0"])
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .env("PROD_MODE_FORCED", "mock")
        .env("PROD_MOCK_ALLOWED", "false")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PROD_MODE_FORCED") && err.contains("PROD_MOCK_ALLOWED"), "{err}");
}

/// The AWS configuration pointing at the moto that `scripts/test` started,
/// with this test's own tables.
fn aws_env(cmd: &mut Command, prefix: &str) {
    let endpoint =
        std::env::var("IBYOK_TEST_AWS_ENDPOINT").expect("run the tests with scripts/test, which starts moto");
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("IBYOK_TOKENS_TABLE", format!("{prefix}tokens"))
        .env("IBYOK_KEYS_TABLE", format!("{prefix}keys"))
        .env("IBYOK_TENANTS_TABLE", format!("{prefix}tenants"))
        .env("IBYOK_AUDIT_TABLE", format!("{prefix}audit"))
        .env("IBYOK_CHILDREN_TABLE", format!("{prefix}children"))
        .env("IBYOK_USAGE_TABLE", format!("{prefix}usage"))
        .env("IBYOK_LIMITS_TABLE", format!("{prefix}limits"))
        .env("IBYOK_REPLICAS_TABLE", format!("{prefix}replicas"))
        .env_remove("IBYOK_KMS_KEY_ID")
        .env_remove("AWS_LAMBDA_FUNCTION_NAME");
}

/// `ibyok dev --aws` on moto, on the tables named by `prefix` (created if
/// missing), with a KMS key of its own.
fn start_aws_dev(prefix: &str) -> Dev {
    let mut cmd = Command::new(BIN);
    cmd.args(["dev", "--listen", "127.0.0.1:0", "--aws", "--create-tables", "--create-kms-key"]);
    aws_env(&mut cmd, prefix);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let token = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .find_map(|l| l.strip_prefix("Root token: ").map(str::to_owned))
        .expect("a root token");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines().map(Result::unwrap);
    let url =
        lines.find_map(|l| l.strip_prefix("Listening on ").map(|r| r.split(' ').next().unwrap().to_owned())).unwrap();
    std::thread::spawn(move || for _ in lines {});
    Dev { child, url, token, log: None }
}

/// A rate limit counts across processes: two `ibyok dev --aws` servers on
/// the same tables, 200 concurrent requests of a token limited to 50 a
/// minute, half to each: exactly 50 are served.
#[test]
fn a_rate_limit_holds_across_two_server_processes_on_one_table() {
    let prefix = format!("rl{}-", std::process::id());
    let (a, b) = (start_aws_dev(&prefix), start_aws_dev(&prefix));
    let (code, out, err) = cli(
        &a,
        &["tokens", "create", "--name", "limited", "--scope", "keys:read", "--rate-limit", "50", "--json"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let created = json(&out);
    assert_eq!(created["rateLimit"], 50);
    let token = created["token"].as_str().unwrap().to_owned();
    // Not across a minute boundary: wait for a fresh minute if it is late.
    let second = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 60;
    if second > 45 {
        std::thread::sleep(std::time::Duration::from_secs(61 - second));
    }
    let urls = [a.url.clone(), b.url.clone()];
    // 20 clients at once (moto serves one request at a time, and the
    // servers keep Lambda's 5 s SDK budget), 10 requests each, alternating
    // between the two servers.
    let handles: Vec<_> = (0..20)
        .map(|c| {
            let urls = urls.clone();
            let auth = format!("Bearer {token}");
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        let url = format!("{}/keys", urls[(c + i) % 2]);
                        match ureq::get(&url).set("authorization", &auth).call() {
                            Ok(r) => (r.status(), r.header("ratelimit-limit").map(str::to_owned)),
                            Err(ureq::Error::Status(s, r)) => (s, r.header("ratelimit-limit").map(str::to_owned)),
                            Err(e) => panic!("{e}"),
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<(u16, Option<String>)> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let limited = answers.iter().filter(|(s, _)| *s == 429).count();
    let unavailable = answers.len() - ok - limited;
    assert!(answers.iter().all(|(s, _)| [200, 429, 503].contains(s)), "{answers:?}");
    println!("two processes, limit 50: {ok} served, {limited} refused, {unavailable} unavailable");
    // A 503 (moto overloaded) may have been counted without being served.
    assert!(ok <= 50, "{ok} served over a limit of 50");
    if unavailable == 0 {
        assert_eq!((ok, limited), (50, 150), "{answers:?}");
    }
    assert!(answers.iter().filter(|(s, _)| *s != 503).all(|(_, l)| l.as_deref() == Some("50")));
}

#[test]
fn dev_with_aws_serves_the_contract_on_moto_and_bootstrap_writes_a_working_root_token() {
    let prefix = format!("cli{}-", std::process::id());
    let dev = start_aws_dev(&prefix);
    let (code, out, err) =
        cli(&dev, &["keys", "add", "--name", "k", "--llm-type", "openai", "--json"], Some("sk-on-moto-123456"));
    assert_eq!(code, 0, "{err}");
    let key = json(&out)["keyId"].as_str().unwrap().to_owned();
    assert_eq!(cli(&dev, &["get", &key, "--env", "prod"], None).1.trim(), "sk-on-moto-123456");
    // The counters come from the audit stream, which the dev server applies
    // every second (what the usage function does in AWS).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, out, _) = cli(&dev, &["usage", "--json"], None);
        if json(&out)["keys"][0]["retrievals"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the read is not counted after 10 s: {out}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // The operator's bootstrap writes a second tenant straight to the tables.
    let mut cmd = Command::new(BIN);
    cmd.args(["admin", "bootstrap", "--tenant", "acme", "--owner", "github:Acme-Lead"]);
    aws_env(&mut cmd, &prefix);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Owner github:acme-lead invited as owner"));
    let acme = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(acme.starts_with("ibyok_"));
    let acme_dev = Dev { child: Command::new("true").spawn().unwrap(), url: dev.url.clone(), token: acme, log: None };
    let (code, out, _) = cli(&acme_dev, &["keys", "list", "--json"], None);
    assert_eq!(code, 0);
    assert!(json(&out)["keys"].as_array().unwrap().is_empty(), "a tenant of its own");
    // Its first owner, and the members commands over it.
    let (code, out, err) = cli(&acme_dev, &["members", "list", "--json"], None);
    assert_eq!(code, 0, "{err}");
    let owner = &json(&out)["members"][0];
    assert_eq!((owner["login"].as_str(), owner["role"].as_str()), (Some("Acme-Lead"), Some("owner")));
    let owner_id = owner["memberId"].as_str().unwrap().to_owned();
    let (code, out, err) = cli(&acme_dev, &["members", "invite", "oidc:bo@acme.example", "--role", "viewer"], None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("bo@acme.example invited as viewer"), "{out}");
    let (code, _, err) = cli(&acme_dev, &["members", "set-role", &owner_id, "--role", "admin"], None);
    assert!(code == 1 && err.contains("409") && err.contains("last owner"), "{err}");
    let (code, out, _) = cli(&acme_dev, &["members", "list"], None);
    assert!(code == 0 && out.contains("github:Acme-Lead") && out.contains("invited"), "{out}");
    let mut bad = Command::new(BIN);
    bad.args(["admin", "bootstrap", "--tenant", "x", "--owner", "gitlab:someone"]);
    aws_env(&mut bad, &prefix);
    let out = bad.output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("github:LOGIN or oidc:EMAIL"));
    let (code, _, err) = cli(&acme_dev, &["get", &key], None);
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");

    // The operator's quota, by tenant name, then lifted.
    let admin_quota = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["admin", "quota", "--tenant"]).args(args);
        aws_env(&mut cmd, &prefix);
        cmd.output().unwrap()
    };
    let out = admin_quota(&["acme", "--reads-per-month", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, out, err) =
        cli(&acme_dev, &["keys", "add", "--name", "a", "--llm-type", "openai", "--json"], Some("sk-acme-1"));
    assert_eq!(code, 0, "{err}");
    let acme_key = json(&out)["keyId"].as_str().unwrap().to_owned();
    assert_eq!(cli(&acme_dev, &["get", &acme_key, "--env", "prod"], None).0, 0);
    let (code, _, err) = cli(&acme_dev, &["get", &acme_key, "--env", "dev"], None);
    assert!(code == 1 && err.contains("quota_exceeded") && err.contains("429"), "{err}");
    let (_, out, _) = cli(&acme_dev, &["usage"], None);
    assert!(out.contains("Quota: 1 of 1 value reads this month"), "{out}");
    let out = admin_quota(&["acme", "--unlimited"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cli(&acme_dev, &["get", &acme_key, "--env", "staging"], None).0, 0);
    let out = admin_quota(&["nobody", "--unlimited"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no tenant is named"));
    let out = admin_quota(&["acme"]);
    assert!(!out.status.success(), "a quota or --unlimited is required");
}

/// The CLI warns on stderr when the server says its token expires within
/// 7 days, and stays quiet otherwise.
#[test]
fn the_cli_warns_of_a_token_expiring_within_seven_days() {
    let dev = start_dev(&[]);
    let (code, _, err) = cli(&dev, &["keys", "list"], None);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "a root token has a year: {err}");
    let (code, out, err) = cli(
        &dev,
        &["tokens", "create", "--name", "short", "--scope", "keys:read", "--expires-in", "86400", "--json"],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let short = json(&out)["token"].as_str().unwrap().to_owned();
    let short_dev = Dev { child: Command::new("true").spawn().unwrap(), url: dev.url.clone(), token: short, log: None };
    let (code, _, err) = cli(&short_dev, &["keys", "list"], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.starts_with("warning: this token expires at ")
            && (err.contains("in 23 hours") || err.contains("in 24 hours")),
        "{err}"
    );
    assert_eq!(err.matches("warning").count(), 1, "once: {err}");
    // Also on an error answer (the token authenticated, the scope is missing).
    let (code, _, err) = cli(&short_dev, &["usage"], None);
    assert!(code == 1 && err.contains("warning: this token expires") && err.contains("403"), "{err}");
}

/// `ibyok dev` runs the cleanup function's work on its own: a revoked token
/// past its grace (here none) leaves the listing without anyone asking.
#[test]
fn the_dev_server_purges_revoked_and_expired_tokens() {
    let dir = std::env::temp_dir().join(format!("ibyok-purge-{}", std::process::id()));
    let args = ["--purge-every", "1", "--data-dir", dir.to_str().unwrap()];
    let dev = start_dev_with(&args, &[("IBYOK_REVOKED_RETENTION_SECONDS", "0")]);
    let (code, out, err) = cli(&dev, &["tokens", "create", "--name", "short", "--scope", "keys:read", "--json"], None);
    assert_eq!(code, 0, "{err}");
    let id = json(&out)["tokenId"].as_str().unwrap().to_owned();
    let (code, _, err) = cli(&dev, &["tokens", "revoke", &id], None);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&dev, &["tokens", "list", "--state", "revoked", "--unused", "1s", "--json"], None);
    assert_eq!(code, 0, "{err}");
    assert!(json(&out)["tokens"].as_array().unwrap().is_empty(), "revoked is not live: the filters AND");
    let (code, _, err) = cli(&dev, &["tokens", "list", "--expiring", "soon"], None);
    assert!(code != 0 && err.contains("duration"), "{err}");
    let listed = || {
        let (_, out, _) = cli(&dev, &["tokens", "list", "--state", "revoked", "--json"], None);
        out.contains(&id)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while listed() {
        assert!(std::time::Instant::now() < deadline, "the revoked token is still listed after 10 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let saved = json(&std::fs::read_to_string(dir.join("store.json")).unwrap());
    let rows = saved["tokens"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|t| t["token_id"] != id.as_str()), "and gone from the data file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_console_is_served_with_its_headers_and_root_stays_404() {
    let dev = start_dev(&[]);
    let r = ureq::get(&format!("{}/console/", dev.url)).call().unwrap();
    let csp = r.header("content-security-policy").unwrap().to_owned();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert!(r.into_string().unwrap().contains("js/main.js"));
    assert_eq!(ureq::get(&format!("{}/console/js/token.js", dev.url)).call().unwrap().status(), 200);
    match ureq::get(&format!("{}/", dev.url)).call() {
        Err(ureq::Error::Status(404, _)) => {}
        other => panic!("GET / answered {other:?}"),
    }
}

/// `ibyok dev` logs the cleanup function's expiry notice, once, for a token
/// that reaches 7 days before its expiry.
#[test]
fn the_dev_server_logs_each_expiry_notice_once() {
    let dev = start_dev(&["--purge-every", "1"]);
    let log = dev.log.as_ref().unwrap();
    let notices = || log.try_iter().filter(|l| l.starts_with("notice: ")).collect::<Vec<_>>();
    // Due one second after its creation: 7 days and a second to live.
    let args = ["tokens", "create", "--name", "weekly", "--scope", "keys:read", "--expires-in", "604801", "--json"];
    let (code, out, err) = cli(&dev, &args, None);
    assert_eq!(code, 0, "{err}");
    let created = json(&out);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = notices();
    while seen.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        seen = notices();
    }
    let line = seen.first().expect("a notice within 10 s").clone();
    let notice = json(line.strip_prefix("notice: ").unwrap());
    assert_eq!(notice["tokenId"], created["tokenId"]);
    assert_eq!(notice["name"], "weekly");
    assert_eq!(notice["expiresAt"], created["expiresAt"]);
    assert!(notice["tenantId"].as_str().unwrap().starts_with("ten_"));
    assert!(!line.contains(created["token"].as_str().unwrap()) && !line.contains("ibyok_"), "{line}");
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(seen.len() + notices().len(), 1, "once");
}
