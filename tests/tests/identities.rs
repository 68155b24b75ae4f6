//! Workload identities against moto and a real local OpenID issuer: the
//! OIDC exchange and its hostile matrix (one 401 for every cause, the cause
//! in the audit), JWKS caching, rotation and outage, `jti` replay, and the
//! end of exchanged tokens when the identity or its creator goes.

use ibyok_tests::issuer::{Issuer, SigningKey};
use ibyok_tests::{Env, Req, Resp};
use serde_json::{json, Value};

const SUBJECT: &str = "repo:acme/app:environment:production";
const AUDIENCE: &str = "ibyok:acme-prod";

struct World {
    env: Env,
    issuer: Issuer,
    key: SigningKey,
    identity: String,
    key_id: String,
}

fn now_s(env: &Env) -> i64 {
    use ibyok::clock::Clock;
    env.clock.now().seconds()
}

/// Good claims for the identity, at the env's clock.
fn claims(env: &Env, issuer: &Issuer) -> Value {
    let now = now_s(env);
    json!({"iss": issuer.url, "aud": AUDIENCE, "sub": SUBJECT, "iat": now - 5, "nbf": now - 5, "exp": now + 300,
           "repository_id": "81234567", "ref": "refs/heads/main", "jti": ibyok::ids::random_base62(16)})
}

async fn world() -> World {
    let env = Env::new().await;
    let issuer = Issuer::start().await;
    let key = SigningKey::ec();
    issuer.publish("k1", &key);
    let key_id = env.add_key(&env.root, "OpenAI", "openai", "sk-live-value-1").await;
    let body = json!({"name": "deploy from main", "kind": "oidc", "issuer": issuer.url, "audience": AUDIENCE,
        "subject": SUBJECT, "boundClaims": {"repository_id": "81234567", "ref": ["refs/heads/main"]},
        "scopes": ["keys:read", "tokens:write"], "keyIds": [key_id], "tokenTtl": 600});
    let r = env.call(Req::post("/identities").token(&env.root).json(body)).await.expect(201);
    let identity = r.body["identityId"].as_str().unwrap().to_owned();
    World { env, issuer, key, identity, key_id }
}

impl World {
    fn jwt(&self, claims: &Value) -> String {
        self.key.sign(&json!({"alg": self.key.alg(), "kid": "k1", "typ": "JWT"}), claims)
    }

    async fn exchange(&self, jwt: &str) -> Resp {
        self.exchange_as(&self.identity, jwt).await
    }

    async fn exchange_as(&self, identity: &str, jwt: &str) -> Resp {
        self.env.call(Req::post("/auth/oidc").json(json!({"identityId": identity, "jwt": jwt}))).await
    }

    /// The newest audit events' (action, detail).
    async fn denials(&self) -> Vec<String> {
        let r = self.env.call(Req::get("/audit?limit=100").token(&self.env.root)).await.expect(200);
        r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "auth.denied" && e["identityId"] == self.identity.as_str())
            .map(|e| e["detail"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

#[tokio::test]
async fn an_exchange_gives_a_short_lived_token_with_the_identitys_rights_and_no_minting() {
    let w = world().await;
    let env = &w.env;
    let r = w.exchange(&w.jwt(&claims(env, &w.issuer))).await.expect(201);
    let b = &r.body;
    let token = b["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ibyok_"));
    assert_eq!(b["identityId"], w.identity.as_str());
    assert_eq!(b["scopes"], json!(["keys:read"]), "tokens:write is never granted by an exchange");
    assert_eq!(b["keyIds"], json!([w.key_id]));
    let created = ibyok::clock::Timestamp::parse_rfc3339(b["createdAt"].as_str().unwrap()).unwrap();
    let expires = ibyok::clock::Timestamp::parse_rfc3339(b["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires.seconds() - created.seconds(), 600, "tokenTtl");
    // It reads the key, and cannot mint.
    let read = env.read(&token, &w.key_id, "prod").await.expect(200);
    assert_eq!(read.body["value"], "sk-live-value-1");
    let mint = json!({"name": "x", "scopes": ["keys:read"]});
    env.call(Req::post("/tokens").token(&token).json(mint)).await.expect_error(403, "forbidden");
    // Listed under the identity's creator, revocable one by one.
    let listed = env.call(Req::get("/tokens").token(&env.root)).await.expect(200);
    let mine = listed.body["tokens"].as_array().unwrap().iter().find(|t| t["tokenId"] == b["tokenId"]).cloned();
    let mine = mine.expect("listed under the root");
    assert_eq!(mine["identityId"], w.identity.as_str());
    assert!(mine["name"].as_str().unwrap().contains(SUBJECT), "{mine}");
    // The exchange and the token's own events name the identity.
    let audit = env.call(Req::get("/audit?limit=20").token(&env.root)).await.expect(200);
    let events = audit.body["events"].as_array().unwrap();
    let exchange = events.iter().find(|e| e["action"] == "auth.exchange").expect("auth.exchange");
    assert_eq!(exchange["detail"], SUBJECT);
    assert_eq!(exchange["actor"]["kind"], "identity");
    assert_eq!(exchange["actor"]["identityId"], w.identity.as_str());
    let read_event = events.iter().find(|e| e["action"] == "key.read").expect("key.read");
    assert_eq!(read_event["actor"]["identityId"], w.identity.as_str());
    assert_eq!(read_event["actor"]["tokenId"], b["tokenId"]);
    // The JWT, its signature and the token appear in no event.
    let jwt_text = audit.text();
    assert!(!jwt_text.contains("ibyok_") && !jwt_text.contains("eyJ"), "{jwt_text}");
}

#[tokio::test]
async fn every_refusal_is_the_same_401_and_its_cause_goes_to_the_audit() {
    let w = world().await;
    let env = &w.env;
    let good = claims(env, &w.issuer);
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let now = now_s(env);
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    // `none`; HS256 keyed with the public key's JWK text; an unknown kid;
    // another key under the known kid.
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "kid": "k1"})), b64(&good));
    let hs256 = {
        use aws_lc_rs::hmac;
        let input = format!("{}.{}", b64(&json!({"alg": "HS256", "kid": "k1"})), b64(&good));
        let k = hmac::Key::new(hmac::HMAC_SHA256, w.key.jwk("k1").to_string().as_bytes());
        let tag = hmac::sign(&k, input.as_bytes());
        use base64::Engine;
        format!("{input}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    let other = SigningKey::ec();
    let unknown_kid = other.sign(&json!({"alg": "ES256", "kid": "k-unknown"}), &good);
    let impostor = other.sign(&json!({"alg": "ES256", "kid": "k1"}), &good);
    let tampered = {
        let t = w.jwt(&good);
        let parts: Vec<&str> = t.split('.').collect();
        format!("{}.{}.{}", parts[0], b64(&with("sub", json!("repo:evil/app:environment:production"))), parts[2])
    };
    let cases: Vec<(&str, String)> = vec![
        ("algorithm", none),
        ("algorithm", hs256),
        ("unknown_kid", unknown_kid),
        ("signature", impostor),
        ("issuer", w.jwt(&with("iss", json!("https://token.actions.githubusercontent.com")))),
        ("audience", w.jwt(&without("aud"))),
        ("audience", w.jwt(&with("aud", json!("ibyok:other")))),
        ("expired", w.jwt(&with("exp", json!(now - 120)))),
        ("not_yet_valid", w.jwt(&with("nbf", json!(now + 120)))),
        ("issued_in_future", w.jwt(&with("iat", json!(now + 120)))),
        ("lifetime", w.jwt(&with("exp", json!(now - 5 + 86_401)))),
        ("subject", w.jwt(&with("sub", json!("repo:acme/app:environment:staging")))),
        ("bound_claim", w.jwt(&without("repository_id"))),
        ("bound_claim", w.jwt(&with("ref", json!("refs/heads/feature")))),
        ("signature", tampered),
        ("malformed", "garbage".to_owned()),
    ];
    let mut answers = Vec::new();
    for (_, jwt) in &cases {
        let r = w.exchange(jwt).await.expect_error(401, "unauthorized");
        answers.push(r.body.clone());
    }
    // A replayed jti, an unknown identity and another tenant's identity.
    let once = w.jwt(&good);
    w.exchange(&once).await.expect(201);
    answers.push(w.exchange(&once).await.expect_error(401, "unauthorized").body);
    answers.push(
        w.exchange_as("idn_000000000000000000000000", &w.jwt(&good)).await.expect_error(401, "unauthorized").body,
    );
    let (_, other_root) = env.other_tenant().await;
    let theirs = json!({"name": "theirs", "kind": "oidc", "issuer": w.issuer.url, "audience": AUDIENCE,
                        "subject": SUBJECT, "scopes": ["keys:read"]});
    let theirs = env.call(Req::post("/identities").token(&other_root).json(theirs)).await.expect(201);
    let mut for_mine = good.clone();
    for_mine["jti"] = json!("another");
    let theirs_id = theirs.body["identityId"].as_str().unwrap();
    let r = w.exchange_as(theirs_id, &w.jwt(&for_mine)).await;
    assert_eq!(r.status, 201, "the other tenant's rule matches this JWT too: a rule is what decides");
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("ibyok:theirs");
    answers.push(w.exchange_as(theirs_id, &w.jwt(&wrong_aud)).await.expect_error(401, "unauthorized").body);
    assert!(answers.windows(2).all(|p| p[0] == p[1]), "one answer for all: {answers:?}");
    // Each cause was recorded in the identity's tenant, never answered.
    let mut recorded = w.denials().await;
    recorded.reverse();
    let mut expected: Vec<String> = cases.iter().map(|(c, _)| (*c).to_owned()).collect();
    expected.push("replayed_jti".into());
    assert_eq!(recorded, expected);
}

#[tokio::test]
async fn a_published_key_is_picked_up_within_a_minute_and_kid_floods_fetch_once_a_minute() {
    let w = world().await;
    let env = &w.env;
    w.exchange(&w.jwt(&claims(env, &w.issuer))).await.expect(201);
    let fetched = w.issuer.requests();
    assert_eq!(fetched, 2, "discovery and the JWKS, once");
    // A flood of unknown kids within the minute of that fetch: no fetch.
    for i in 0..20 {
        let t = w.key.sign(&json!({"alg": "ES256", "kid": format!("bogus-{i}")}), &claims(env, &w.issuer));
        w.exchange(&t).await.expect_error(401, "unauthorized");
    }
    assert_eq!(w.issuer.requests(), fetched);
    // The issuer rotates in a new key: refused until the minute has passed,
    // then accepted.
    let next = SigningKey::rsa();
    w.issuer.publish("k2", &next);
    let signed = |env: &Env| next.sign(&json!({"alg": "RS256", "kid": "k2"}), &claims(env, &w.issuer));
    w.exchange(&signed(env)).await.expect_error(401, "unauthorized");
    env.clock.advance_seconds(61);
    w.exchange(&signed(env)).await.expect(201);
    assert_eq!(w.issuer.requests(), fetched + 2, "one fetch for the new kid");
    // The old key, withdrawn, stops verifying once the cache is refreshed
    // (an hour on, or at the next unknown kid a minute on).
    w.issuer.withdraw("k1");
    env.clock.advance_seconds(3_601);
    w.exchange(&w.jwt(&claims(env, &w.issuer))).await.expect_error(401, "unauthorized");
}

#[tokio::test]
async fn an_issuer_down_with_nothing_cached_is_503_and_cached_keys_ride_out_an_outage() {
    let w = world().await;
    let env = &w.env;
    w.issuer.set_down(true);
    let r = w.exchange(&w.jwt(&claims(env, &w.issuer))).await.expect_error(503, "unavailable");
    assert!(r.raw.header("retry-after").is_some());
    w.issuer.set_down(false);
    env.clock.advance_seconds(61);
    w.exchange(&w.jwt(&claims(env, &w.issuer))).await.expect(201);
    // Down again, the hour's refresh fails: the cached key still serves.
    w.issuer.set_down(true);
    env.clock.advance_seconds(3_601);
    w.exchange(&w.jwt(&claims(env, &w.issuer))).await.expect(201);
}

#[tokio::test]
async fn deleting_the_identity_ends_its_tokens_at_once_and_further_exchanges() {
    let w = world().await;
    let env = &w.env;
    let a = w.exchange(&w.jwt(&claims(env, &w.issuer))).await.expect(201).body["token"].as_str().unwrap().to_owned();
    let b = w.exchange(&w.jwt(&claims(env, &w.issuer))).await.expect(201).body["token"].as_str().unwrap().to_owned();
    env.read(&a, &w.key_id, "prod").await.expect(200);
    let path = format!("/identities/{}", w.identity);
    env.call(Req::delete(&path).token(&env.root)).await.expect(204);
    for t in [&a, &b] {
        env.read(t, &w.key_id, "prod").await.expect_error(401, "unauthorized");
    }
    w.exchange(&w.jwt(&claims(env, &w.issuer))).await.expect_error(401, "unauthorized");
    env.call(Req::get(&path).token(&env.root)).await.expect_error(404, "not_found");
    // Idempotent: a second delete answers 204 again, with no second event.
    env.call(Req::delete(&path).token(&env.root)).await.expect(204);
    let audit = env.call(Req::get("/audit?limit=50").token(&env.root)).await.expect(200);
    let deletes = audit.body["events"].as_array().unwrap().iter().filter(|e| e["action"] == "identity.delete").count();
    assert_eq!(deletes, 1);
    assert!(w.denials().await.contains(&"identity_deleted".to_owned()));
}

#[tokio::test]
async fn revoking_the_creator_ends_the_exchanged_tokens_and_disables_the_identity() {
    let w = world().await;
    let env = &w.env;
    let (creator_id, creator) =
        env.issue(&env.root, json!({"name": "ci admin", "scopes": ["keys:read", "tokens:write"]})).await;
    let body = json!({"name": "ci", "kind": "oidc", "issuer": w.issuer.url, "audience": AUDIENCE,
        "subject": "repo:acme/*:environment:production", "subjectMatch": "glob", "scopes": ["keys:read"]});
    let r = env.call(Req::post("/identities").token(&creator).json(body)).await.expect(201);
    let identity = r.body["identityId"].as_str().unwrap().to_owned();
    assert_eq!(r.body["createdBy"], creator_id.as_str());
    let t = w.exchange_as(&identity, &w.jwt(&claims(env, &w.issuer))).await.expect(201);
    let token = t.body["token"].as_str().unwrap().to_owned();
    env.read(&token, &w.key_id, "prod").await.expect(200);
    env.call(Req::delete(&format!("/tokens/{creator_id}")).token(&env.root)).await.expect(204);
    env.read(&token, &w.key_id, "prod").await.expect_error(401, "unauthorized");
    w.exchange_as(&identity, &w.jwt(&claims(env, &w.issuer))).await.expect_error(401, "unauthorized");
}

#[tokio::test]
async fn identities_are_bounded_by_their_creator_and_seen_only_in_its_subtree() {
    let w = world().await;
    let env = &w.env;
    let (_, narrow) = env
        .issue(&env.root, json!({"name": "narrow", "scopes": ["keys:read", "tokens:write"], "keyIds": [w.key_id]}))
        .await;
    let rule = |scopes: Value| json!({"name": "n", "kind": "aws", "awsAccountId": "123456789012", "awsRoleName": "deployer", "scopes": scopes});
    let wider = env.call(Req::post("/identities").token(&narrow).json(rule(json!(["usage:read"])))).await;
    wider.expect_error(403, "forbidden");
    let mine = env.call(Req::post("/identities").token(&narrow).json(rule(json!(["keys:read"])))).await.expect(201);
    assert_eq!(mine.body["keyIds"], json!([w.key_id]), "inherits its creator's keyIds");
    assert_eq!(mine.body["tokenTtl"], 900, "the default");
    let listed = env.call(Req::get("/identities").token(&narrow)).await.expect(200);
    let ids: Vec<&str> =
        listed.body["identities"].as_array().unwrap().iter().map(|i| i["identityId"].as_str().unwrap()).collect();
    assert_eq!(ids, [mine.body["identityId"].as_str().unwrap()], "not the root's identity");
    let all = env.call(Req::get("/identities").token(&env.root)).await.expect(200);
    assert_eq!(all.body["identities"].as_array().unwrap().len(), 2);
    env.call(Req::get(&format!("/identities/{}", w.identity)).token(&narrow)).await.expect_error(404, "not_found");
    env.call(Req::delete(&format!("/identities/{}", w.identity)).token(&narrow)).await.expect_error(404, "not_found");
    let (_, reader) = env.issue(&env.root, json!({"name": "reader", "scopes": ["keys:read"]})).await;
    env.call(Req::get("/identities").token(&reader)).await.expect_error(403, "forbidden");
    env.call(Req::post("/identities").token(&env.root).json(json!({"name": "n", "kind": "oidc"})))
        .await
        .expect_error(400, "invalid_request");
}
