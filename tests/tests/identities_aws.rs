//! The AWS exchange against moto's IAM and STS with signature checking on:
//! a role assumed through moto exchanges; a wrong secret, a stale date,
//! another server id, a URL pointing elsewhere, another body, a user
//! instead of the role, and another role are all the one 401.

use aws_credential_types::Credentials;
use ibyok::identity::sts::{sign_get_caller_identity, SignedRequest};
use ibyok_tests::sts::Sts;
use ibyok_tests::{Env, Req, Resp};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

const SERVER_ID: &str = "vault.test";

fn body(identity: &str, signed: &SignedRequest) -> Value {
    let headers: serde_json::Map<String, Value> =
        signed.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    json!({"identityId": identity, "request": {"url": signed.url, "headers": headers, "body": signed.body}})
}

async fn exchange(env: &Env, identity: &str, signed: &SignedRequest) -> Resp {
    env.call(Req::post("/auth/aws").json(body(identity, signed))).await
}

fn sign(creds: &Credentials, url: &str, server_id: &str, at: SystemTime) -> SignedRequest {
    sign_get_caller_identity(creds, "us-east-1", url, server_id, at).unwrap()
}

#[tokio::test]
async fn an_assumed_role_exchanges_and_every_forgery_is_the_same_401() {
    let sts = Sts::start("deployer").await;
    let config =
        ibyok::config::Config { server_id: SERVER_ID.into(), sts_endpoint: sts.url.clone(), ..Default::default() };
    let env = Env::builder().config(config).build().await;
    let key = env.add_key(&env.root, "k", "openai", "sk-aws-1").await;
    let rule = json!({"name": "lambda deployer", "kind": "aws", "awsAccountId": sts.account,
                      "awsRoleName": "deployer", "scopes": ["keys:read"], "tokenTtl": 300});
    let r = env.call(Req::post("/identities").token(&env.root).json(rule)).await.expect(201);
    let identity = r.body["identityId"].as_str().unwrap().to_owned();
    let role = sts.assume("deployer", "build-42").await;
    let now = SystemTime::now();

    let r = exchange(&env, &identity, &sign(&role, &sts.url, SERVER_ID, now)).await.expect(201);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(r.body["name"].as_str().unwrap().contains("assumed-role/deployer/build-42"), "{}", r.text());
    env.read(&token, &key, "prod").await.expect(200);
    let audit = env.call(Req::get("/audit?limit=10").token(&env.root)).await.expect(200);
    let ev = audit.body["events"].as_array().unwrap().iter().find(|e| e["action"] == "auth.exchange").cloned().unwrap();
    assert_eq!(ev["detail"], format!("arn:aws:sts::{}:assumed-role/deployer/build-42", sts.account));

    let wrong_secret =
        Credentials::new(role.access_key_id(), "not-the-secret", role.session_token().map(str::to_owned), None, "x");
    let elsewhere = sign(&role, "http://127.0.0.1:9/", SERVER_ID, now);
    let mut other_body = sign(&role, &sts.url, SERVER_ID, now);
    other_body.body = "Action=GetSessionToken&Version=2011-06-15".into();
    let other = sts.assume("deployer", "other").await;
    let theirs = sign(&other, &sts.url, "vault.other", now);
    // Signed for another server, this server's id put in afterwards: the
    // signature does not cover it, and STS refuses.
    let mut spliced = sign(&role, &sts.url, "vault.other", now);
    for (k, v) in spliced.headers.iter_mut() {
        if k == "ibyok-server-id" {
            *v = SERVER_ID.into();
        }
    }
    let cases: Vec<(&str, SignedRequest)> = vec![
        ("sts_refused", sign(&wrong_secret, &sts.url, SERVER_ID, now)),
        ("stale_date", sign(&role, &sts.url, SERVER_ID, now - Duration::from_secs(16 * 60))),
        ("server_id", theirs),
        ("sts_refused", spliced),
        ("request", elsewhere),
        ("request", other_body),
        ("principal", sign(&sts.user, &sts.url, SERVER_ID, now)),
    ];
    let mut answers = Vec::new();
    for (_, signed) in &cases {
        answers.push(exchange(&env, &identity, signed).await.expect_error(401, "unauthorized").body);
    }
    assert!(answers.windows(2).all(|p| p[0] == p[1]), "{answers:?}");
    let audit = env.call(Req::get("/audit?limit=50").token(&env.root)).await.expect(200);
    let mut causes: Vec<String> = audit.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.denied")
        .map(|e| e["detail"].as_str().unwrap().split(':').next().unwrap().to_owned())
        .collect();
    causes.reverse();
    let expected: Vec<&str> = cases.iter().map(|(c, _)| *c).collect();
    assert_eq!(causes, expected);

    // Another role of the same account does not match the rule.
    let rule = json!({"name": "other role", "kind": "aws", "awsAccountId": sts.account,
                      "awsRoleName": "auditor", "scopes": ["keys:read"]});
    let r = env.call(Req::post("/identities").token(&env.root).json(rule)).await.expect(201);
    let auditor = r.body["identityId"].as_str().unwrap();
    exchange(&env, auditor, &sign(&role, &sts.url, SERVER_ID, now)).await.expect_error(401, "unauthorized");
}
