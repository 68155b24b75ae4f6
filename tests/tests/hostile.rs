//! Hostile callers, one table: every route × every way a caller can be
//! wrong, against moto, with the contract's exact status — and one identical
//! body for every 401 and for every 404 of a key, so that neither is an
//! oracle. People's sign-in takes no bearer token: on its routes every one
//! of these callers gets exactly what a browser with no token gets, a
//! sign-in finished and its refusals alike, and no token is counted or
//! learns its expiry.

use ibyok::api::body::parse_query;
use ibyok::config::Config;
use ibyok_tests::issuer::Issuer;
use ibyok_tests::{Env, Req, Resp};
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

const ROUTES: [&str; 28] = [
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
    "GET /auth/providers",
    "GET /auth/{provider}/start",
    "GET /auth/{provider}/callback",
    "POST /auth/session",
];

/// Sign-in's routes: no bearer token, whatever a caller sends.
const SIGN_IN: [&str; 4] =
    ["GET /auth/providers", "GET /auth/{provider}/start", "GET /auth/{provider}/callback", "POST /auth/session"];

/// A service with both sign-in providers on, pointed at a stand-in on
/// loopback (OpenID discovery, and GitHub's token endpoint and user), and
/// the GitHub user it answers invited as a viewer: the member's id.
async fn env_with_sign_in() -> (Env, Issuer, String) {
    let issuer = Issuer::start().await;
    issuer.github_user(json!({"id": 4242, "login": "octocat", "name": "Mona Lisa"}));
    let config = Config { sign_in: issuer.sign_in("vault-console", "oidc-client-secret", false), ..Config::default() };
    let env = Env::builder().config(config).build().await;
    let invite = json!({"provider": "github", "login": "octocat", "role": "viewer"});
    let r = env.call(Req::post("/members").token(&env.root).json(invite)).await.expect(201);
    let member = r.body["memberId"].as_str().unwrap().to_owned();
    (env, issuer, member)
}

/// A sign-in a browser started with no token (and, for the session's row,
/// finished): its cookie, its `state`, and the one-time code handed over.
struct Browser {
    cookie: String,
    state: String,
    code: String,
}

impl Browser {
    async fn sign_in(env: &Env, finish: bool) -> Browser {
        let r = env.call(Req::get("/auth/github/start")).await.expect(302);
        let location = r.raw.header("location").unwrap();
        let query = parse_query(location.split_once('?').map(|(_, q)| q));
        let state = query.into_iter().find(|(k, _)| k == "state").unwrap().1;
        let set_cookie = r.raw.header("set-cookie").unwrap();
        let cookie = set_cookie.split(';').next().unwrap().strip_prefix("ibyok_signin=").unwrap().to_owned();
        let mut browser = Browser { cookie, state, code: String::new() };
        if finish {
            let r = env.call(browser.callback()).await.expect(302);
            browser.code = handed_code(&r);
        }
        browser
    }

    fn with_cookie(&self, mut req: Req) -> Req {
        req.0.cookie = Some(format!("theme=dark; ibyok_signin={}", self.cookie).into());
        req
    }

    /// The provider sending the browser back (GitHub's stand-in takes `good`).
    fn callback(&self) -> Req {
        self.with_cookie(Req::get(&format!("/auth/github/callback?code=good&state={}", self.state)))
    }

    fn session(&self) -> Req {
        self.with_cookie(Req::post("/auth/session").json(json!({"code": self.code})))
    }
}

/// The one-time code in the console's URL fragment.
fn handed_code(r: &Resp) -> String {
    let location = r.raw.header("location").unwrap();
    location.strip_prefix("/console/#signin=").unwrap_or_else(|| panic!("no code in {location}")).to_owned()
}

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
    // Sign-in ignores the caller's header: a browser's sign-in goes through.
    match route {
        "GET /auth/providers" => return 200,
        "GET /auth/{provider}/start" | "GET /auth/{provider}/callback" => return 302,
        "POST /auth/session" => return 201,
        _ => {}
    }
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
    let (env, issuer, member_id) = env_with_sign_in().await;
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
            // After the caller's credentials, which may move the clock past
            // a one-time code's 60 seconds.
            let sign_in = SIGN_IN.contains(&route);
            let browser = match route {
                "GET /auth/{provider}/callback" => Some(Browser::sign_in(&env, false).await),
                "POST /auth/session" => Some(Browser::sign_in(&env, true).await),
                _ => None,
            };
            let with_caller = |req: Req| {
                let req = req.from_ip(ip);
                match &header {
                    Some(h) => req.auth_header(h),
                    None => req,
                }
            };
            let req = match (route, &browser) {
                ("GET /auth/providers", _) => Req::get("/auth/providers"),
                ("GET /auth/{provider}/start", _) => Req::get("/auth/oidc/start?returnTo=/console/keys.html"),
                ("GET /auth/{provider}/callback", Some(b)) => b.callback(),
                ("POST /auth/session", Some(b)) => b.session(),
                _ => request(route, &key, &victim, &member, cases),
            };
            let r = env.call(with_caller(req)).await;
            let want = expected(route, caller);
            assert_eq!(r.status, want, "{route} × {caller:?}: {}", r.text());
            assert!(!r.text().contains("sk-target-secret"), "{route} × {caller:?} leaked the value");
            if sign_in {
                let case = format!("{route} × {caller:?}");
                // The caller's token is neither used nor counted nor echoed.
                assert!(r.raw.header("ratelimit-limit").is_none(), "{case}: the token was counted");
                if let Some(secret) = header.as_deref().and_then(|h| h.split_once(' ')).map(|(_, t)| t) {
                    let headers: Vec<&str> = r.raw.headers.iter().map(|(_, v)| v.as_str()).collect();
                    assert!(!r.text().contains(secret) && !headers.iter().any(|v| v.contains(secret)), "{case}");
                }
                match route {
                    "GET /auth/providers" => assert_eq!(
                        r.body,
                        json!({"providers": [{"id": "github", "name": "GitHub"}, {"id": "oidc", "name": ibyok_tests::issuer::SIGN_IN_NAME}]}),
                        "{case}"
                    ),
                    "GET /auth/{provider}/start" => {
                        let location = r.raw.header("location").unwrap();
                        assert!(location.starts_with(&format!("{}/authorize?", issuer.url)), "{case}: {location}");
                        assert!(r.raw.header("set-cookie").unwrap().starts_with("ibyok_signin="), "{case}");
                        // An unknown provider: the same 404 with or without a caller.
                        let r = env.call(with_caller(Req::get("/auth/okta/start"))).await;
                        bodies.entry(404).or_default().push((format!("{case} (okta)"), r.expect(404).text()));
                    }
                    "GET /auth/{provider}/callback" => {
                        assert!(r.raw.header("location").unwrap().starts_with("/console/#signin="), "{case}");
                        // Its state is spent: the page, not JSON, for every caller.
                        let again = env.call(with_caller(browser.as_ref().unwrap().callback())).await;
                        assert_eq!(again.status, 400, "{case} again: {}", again.text());
                        assert!(again.raw.header("content-type").unwrap().starts_with("text/html"), "{case}");
                        assert!(again.text().contains("Sign-in expired"), "{case}");
                        assert!(again.raw.header("location").is_none(), "{case}");
                    }
                    _ => {
                        // The member's session, in the member's tenant (the
                        // other tenant's caller gets no session of its own).
                        assert_eq!(r.body["member"]["memberId"], member_id, "{case}");
                        let session = r.body["token"].as_str().unwrap();
                        let keys = env.call(Req::get("/keys").token(session)).await.expect(200);
                        assert!(keys.text().contains(&other_key), "{case}: not the member's tenant");
                        // Spent: the one 401, whoever asks.
                        let again = env.call(with_caller(browser.as_ref().unwrap().session())).await;
                        assert_eq!(again.raw.header("www-authenticate"), Some("Bearer"), "{case}");
                        bodies.entry(401).or_default().push((format!("{case} (spent)"), again.expect(401).text()));
                    }
                }
            }
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
            assert_eq!(expiry.is_some(), want != 401 && !sign_in, "{route} × {caller:?}: Ibyok-Token-Expires-At");
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
    // One 404 body for an unknown provider, whoever asks.
    let providers: Vec<_> = bodies[&404].iter().filter(|(c, _)| c.contains("(okta)")).collect();
    assert_eq!(providers.len(), 13);
    assert!(providers.iter().all(|(_, b)| *b == providers[0].1), "{providers:#?}");
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
