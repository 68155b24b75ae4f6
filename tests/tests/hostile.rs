//! Hostile callers, one table: every route × every way a caller can be
//! wrong, against moto, with the contract's exact status — and one identical
//! body for every 401 and for every 404 of a key, so that neither is an
//! oracle.

use ibyok_tests::{Env, Req};
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    NoHeader,
    WrongScheme,
    Malformed,
    BadChecksum,
    Unknown,
    Expired,
    Revoked,
    ChildOfRevoked,
    MissingScope,
    OtherTenant,
    OutsideCidrs,
    OutsideKeyIds,
    /// A token whose rate limit for this minute is used up.
    OverRateLimit,
}

impl Caller {
    const ALL: [Caller; 13] = {
        use Caller::*;
        [
            NoHeader,
            WrongScheme,
            Malformed,
            BadChecksum,
            Unknown,
            Expired,
            Revoked,
            ChildOfRevoked,
            MissingScope,
            OtherTenant,
            OutsideCidrs,
            OutsideKeyIds,
            OverRateLimit,
        ]
    };
}

const ROUTES: [&str; 24] = [
    "POST /keys",
    "GET /keys",
    "GET /keys/{keyId}",
    "PATCH /keys/{keyId}",
    "PUT /keys/{keyId}/value",
    "DELETE /keys/{keyId}",
    "GET /external/keys/{keyId}/value",
    "POST /tokens",
    "GET /tokens",
    "DELETE /tokens/{tokenId}",
    "DELETE /tokens/self",
    "GET /settings/modes",
    "PUT /settings/modes",
    "GET /settings/guardrails",
    "GET /usage",
    "GET /usage/daily",
    "GET /audit",
    "GET /audit/digests",
    "POST /keys/{keyId}/promote",
    "GET /keys/{keyId}/versions",
    "GET /members",
    "POST /members",
    "PATCH /members/{memberId}",
    "DELETE /members/{memberId}",
];

fn request(route: &str, key: &str, token_id: &str, member: &str, n: usize) -> Req {
    let (method, path) = route.split_once(' ').unwrap();
    let path = path.replace("{keyId}", key).replace("{tokenId}", token_id).replace("{memberId}", member);
    let req = Req::new(method, &path);
    match route {
        "POST /keys" => req.json(json!({"name": "n", "llmType": "openai", "value": "sk-hostile-0000"})),
        "PATCH /keys/{keyId}" => req.json(json!({"name": "renamed"})),
        "PUT /keys/{keyId}/value" => req.json(json!({"value": "sk-hostile-1111"})),
        "POST /keys/{keyId}/promote" => req.json(json!({"previousValidFor": 60})),
        "POST /tokens" => req.json(json!({"name": "n", "scopes": ["keys:read"]})),
        "PUT /settings/modes" => req.json(json!({"staging": "mock"})),
        "POST /members" => req.json(json!({"provider": "github", "login": format!("invitee-{n}"), "role": "viewer"})),
        "PATCH /members/{memberId}" => req.json(json!({"role": "developer"})),
        _ => req,
    }
}

/// The status the contract gives `route` for `caller`.
fn expected(route: &str, caller: Caller) -> u16 {
    use Caller::*;
    let ok = match route {
        "POST /keys" | "POST /tokens" | "POST /members" => 201,
        r if r.starts_with("DELETE") => 204,
        _ => 200,
    };
    let names_key = route.contains("{keyId}");
    let names_member = route.contains("{memberId}");
    match caller {
        NoHeader | WrongScheme | Malformed | BadChecksum | Unknown | Expired | Revoked | ChildOfRevoked
        | OutsideCidrs => 401,
        // Revoking oneself needs no scope.
        MissingScope if route == "DELETE /tokens/self" => ok,
        MissingScope => 403,
        // Another tenant's token works in its own tenant: our ids are
        // missing there.
        OtherTenant if names_key || names_member || route == "DELETE /tokens/{tokenId}" => 404,
        OtherTenant => ok,
        OutsideKeyIds if names_key => 404,
        // A non-root token reaches only its own subtree; the victim was
        // issued by the root.
        OutsideKeyIds if route == "DELETE /tokens/{tokenId}" => 404,
        OutsideKeyIds if route == "POST /keys" => 403,
        OutsideKeyIds => ok,
        // Counted before anything else the route does.
        OverRateLimit => 429,
    }
}

const ALL_SCOPES: [&str; 9] = [
    "keys:read",
    "keys:write",
    "tokens:read",
    "tokens:write",
    "settings:read",
    "settings:write",
    "usage:read",
    "members:read",
    "members:write",
];

/// A fresh authorization header for `caller`, and the source address to send from.
async fn credentials(env: &Env, caller: Caller, route: &str, key_elsewhere: &str) -> (Option<String>, &'static str) {
    use Caller::*;
    let all = json!(ALL_SCOPES);
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let ip = "198.51.100.7";
    match caller {
        NoHeader => (None, ip),
        WrongScheme => (Some(format!("Basic {}", env.root)), ip),
        Malformed => (bearer("ibyok_not-a-token"), ip),
        BadChecksum => {
            let mut t = env.root.clone();
            let last = t.pop().unwrap();
            t.push(if last == '0' { '1' } else { '0' });
            (bearer(&t), ip)
        }
        Unknown => (bearer(ibyok::token::ParsedToken::generate().secret().expose_token()), ip),
        Expired => {
            let (_, t) = env.issue(&env.root, json!({"name": "e", "scopes": all, "expiresIn": 60})).await;
            env.clock.advance_seconds(61);
            (bearer(&t), ip)
        }
        Revoked => {
            let (id, t) = env.issue(&env.root, json!({"name": "r", "scopes": all})).await;
            env.call(Req::delete(&format!("/tokens/{id}")).token(&env.root)).await.expect(204);
            (bearer(&t), ip)
        }
        ChildOfRevoked => {
            let (pid, p) = env.issue(&env.root, json!({"name": "p", "scopes": all})).await;
            let (_, c) = env.issue(&p, json!({"name": "c", "scopes": all})).await;
            env.call(Req::delete(&format!("/tokens/{pid}")).token(&env.root)).await.expect(204);
            (bearer(&c), ip)
        }
        MissingScope => {
            // Every scope except the route's own (and the write that implies it).
            let needed: &[&str] = match route {
                "POST /keys"
                | "PATCH /keys/{keyId}"
                | "PUT /keys/{keyId}/value"
                | "DELETE /keys/{keyId}"
                | "POST /keys/{keyId}/promote" => &["keys:write"],
                r if r.contains("/keys") => &["keys:read", "keys:write"],
                "POST /tokens" | "DELETE /tokens/{tokenId}" => &["tokens:write"],
                "GET /tokens" => &["tokens:read", "tokens:write"],
                "GET /settings/modes" | "GET /settings/guardrails" => &["settings:read", "settings:write"],
                "PUT /settings/modes" => &["settings:write"],
                "GET /usage" | "GET /usage/daily" | "GET /audit" | "GET /audit/digests" => &["usage:read"],
                "GET /members" => &["members:read", "members:write"],
                r if r.contains("/members") => &["members:write"],
                _ => &["tokens:write"],
            };
            let scopes: Vec<&str> = ALL_SCOPES.iter().copied().filter(|s| !needed.contains(s)).collect();
            let (_, t) = env.issue(&env.root, json!({"name": "m", "scopes": scopes})).await;
            (bearer(&t), ip)
        }
        OtherTenant => {
            let (_, t) = env.other_tenant().await;
            (bearer(&t), ip)
        }
        OutsideCidrs => {
            let (_, t) =
                env.issue(&env.root, json!({"name": "c", "scopes": all, "allowedCidrs": ["203.0.113.0/24"]})).await;
            (bearer(&t), ip)
        }
        OutsideKeyIds => {
            let (_, t) = env.issue(&env.root, json!({"name": "k", "scopes": all, "keyIds": [key_elsewhere]})).await;
            (bearer(&t), ip)
        }
        OverRateLimit => {
            let (_, t) = env.issue(&env.root, json!({"name": "l", "scopes": all, "rateLimit": 1})).await;
            env.call(Req::get("/usage").token(&t)).await.expect(200);
            (bearer(&t), ip)
        }
    }
}

#[tokio::test]
async fn every_route_answers_every_hostile_caller_as_the_contract_says() {
    let env = Env::new().await;
    let other_key = env.add_key(&env.root, "allowed", "openai", "sk-allowed-0000").await;
    let mut bodies: BTreeMap<u16, Vec<(String, String)>> = BTreeMap::new();
    let mut cases = 0;
    for route in ROUTES {
        for caller in Caller::ALL {
            // Fresh targets for each case of a route about them: destructive
            // routes must find them, and listings show them (never a value).
            let key = match route.contains("/keys") {
                true => {
                    let key = env.add_key(&env.root, "target", "openai", "sk-target-secret-0000").await;
                    // A pending version for promote to find.
                    let stage = json!({"value": "sk-target-secret-1111", "stage": "pending"});
                    env.call(Req::put(&format!("/keys/{key}/value")).token(&env.root).json(stage)).await.expect(200);
                    key
                }
                false => String::new(),
            };
            let victim = match route.contains("{tokenId}") {
                true => env.issue(&env.root, json!({"name": "victim", "scopes": ["keys:read"]})).await.0,
                false => String::new(),
            };
            let member = match route.contains("{memberId}") {
                true => {
                    let invite = json!({"provider": "github", "login": format!("member-{cases}"), "role": "viewer"});
                    let member = env.call(Req::post("/members").token(&env.root).json(invite)).await.expect(201);
                    member.body["memberId"].as_str().unwrap().to_owned()
                }
                false => String::new(),
            };
            let (header, ip) = credentials(&env, caller, route, &other_key).await;
            let mut req = request(route, &key, &victim, &member, cases).from_ip(ip);
            if let Some(h) = header {
                req = req.auth_header(&h);
            }
            let r = env.call(req).await;
            let want = expected(route, caller);
            assert_eq!(r.status, want, "{route} × {caller:?}: {}", r.text());
            assert!(!r.text().contains("sk-target-secret"), "{route} × {caller:?} leaked the value");
            if want >= 400 {
                bodies.entry(want).or_default().push((format!("{route} × {caller:?}"), r.text()));
            }
            if want == 401 {
                assert_eq!(r.raw.header("www-authenticate"), Some("Bearer"));
            }
            if want == 429 {
                assert_eq!(r.code(), "rate_limited", "{route}: {}", r.text());
                assert!(r
                    .raw
                    .header("retry-after")
                    .is_some_and(|s| s.parse::<u32>().is_ok_and(|s| (1..=60).contains(&s))));
                assert_eq!(r.raw.header("ratelimit-limit"), Some("1"));
                assert_eq!(r.raw.header("ratelimit-remaining"), Some("0"));
            }
            // Only a request that a token authenticated learns its expiry.
            let expiry = r.raw.header("ibyok-token-expires-at");
            assert_eq!(expiry.is_some(), want != 401, "{route} × {caller:?}: Ibyok-Token-Expires-At");
            assert!(expiry.is_none_or(|e| ibyok::clock::Timestamp::parse_rfc3339(e).is_some()), "{e:?}", e = expiry);
            cases += 1;
        }
    }
    assert_eq!(cases, ROUTES.len() * 13);
    // One 401 body for every reason.
    let unauthorized = &bodies[&401];
    assert!(unauthorized.iter().all(|(_, b)| *b == unauthorized[0].1), "{unauthorized:#?}");
    // One 404 body for a foreign key and a key outside the allow-list.
    let key_404s: Vec<_> = bodies[&404].iter().filter(|(c, _)| c.contains("{keyId}")).collect();
    assert!(key_404s.iter().all(|(_, b)| *b == key_404s[0].1), "{key_404s:#?}");
}

#[tokio::test]
async fn post_tokens_refuses_every_widening() {
    let env = Env::new().await;
    let k1 = env.add_key(&env.root, "k1", "openai", "sk-1").await;
    let k2 = env.add_key(&env.root, "k2", "openai", "sk-2").await;
    let (_, narrow) = env
        .issue(
            &env.root,
            json!({"name": "n", "scopes": ["keys:read", "tokens:write"], "expiresIn": 600,
                   "keyIds": [k1], "allowedCidrs": ["203.0.113.0/24"], "rateLimit": 1000}),
        )
        .await;
    let ask = |body: serde_json::Value| Req::post("/tokens").token(&narrow).from_ip("203.0.113.5").json(body);
    for widening in [
        json!({"name": "x", "scopes": ["keys:write"]}),
        json!({"name": "x", "scopes": ["tokens:write", "settings:read"]}),
        json!({"name": "x", "scopes": ["keys:read"], "keyIds": [k1, k2]}),
        json!({"name": "x", "scopes": ["keys:read"], "allowedCidrs": ["203.0.0.0/16"]}),
        json!({"name": "x", "scopes": ["keys:read"], "allowedCidrs": ["::/0"]}),
        json!({"name": "x", "scopes": ["keys:read"], "rateLimit": 1001}),
        json!({"name": "x", "scopes": ["keys:read"], "rateLimit": 100_000}),
    ] {
        env.call(ask(widening.clone())).await.expect_error(403, "forbidden");
    }
    // Expiry cannot be extended: a year asked is capped at the issuer's.
    let r = env.call(ask(json!({"name": "x", "scopes": ["keys:read"], "expiresIn": 31_536_000}))).await.expect(201);
    let exp = ibyok::clock::Timestamp::parse_rfc3339(r.body["expiresAt"].as_str().unwrap()).unwrap();
    let created = ibyok::clock::Timestamp::parse_rfc3339(r.body["createdAt"].as_str().unwrap()).unwrap();
    assert!(exp.seconds() - created.seconds() <= 600);
    assert_eq!(r.body["rateLimit"], 1000, "the issuer's limit, inherited");
}
