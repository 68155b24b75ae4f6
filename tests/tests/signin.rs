//! People's sign-in against moto, a real local OpenID provider (discovery,
//! JWKS, a token endpoint answering ID tokens the test signs) and a GitHub
//! stand-in (access token and user): the browser flow and the CLI's, the
//! session and what it may do, the member's anchor ending everything on
//! removal or demotion, sign-up, and the hostile matrix of the flow.

use ibyok::api::body::parse_query;
use ibyok::config::Config;
use ibyok_tests::issuer::{Issuer, SigningKey};
use ibyok_tests::{Env, Req, Resp};
use serde_json::{json, Value};

const CLIENT: &str = "vault-console";

struct World {
    env: Env,
    issuer: Issuer,
    key: SigningKey,
}

async fn world(signup: bool) -> World {
    let issuer = Issuer::start().await;
    let key = SigningKey::ec();
    issuer.publish("k1", &key);
    let config = Config { sign_in: issuer.sign_in(CLIENT, "oidc-client-secret", signup), ..Config::default() };
    let env = Env::builder().config(config).build().await;
    World { env, issuer, key }
}

fn with_cookie(mut r: Req, cookie: Option<&str>) -> Req {
    r.0.cookie = cookie.map(|c| format!("theme=dark; ibyok_signin={c}").into());
    r
}

/// A started sign-in: the provider's URL's query, and the cookie.
struct Started {
    query: Vec<(String, String)>,
    cookie: String,
}

impl Started {
    fn param(&self, k: &str) -> &str {
        self.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

async fn start(w: &World, provider: &str, extra: &str) -> Started {
    let r = w.env.call(Req::get(&format!("/auth/{provider}/start{extra}"))).await.expect(302);
    let location = r.raw.header("location").unwrap().to_owned();
    let set_cookie = r.raw.header("set-cookie").unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax") && set_cookie.contains("Path=/auth")
    );
    assert!(set_cookie.ends_with("; Secure"), "not a loopback origin here: {set_cookie}");
    assert_eq!(r.raw.header("cache-control"), Some("no-store"));
    let query = parse_query(location.split_once('?').map(|(_, q)| q));
    let cookie = set_cookie.split(';').next().unwrap().strip_prefix("ibyok_signin=").unwrap().to_owned();
    Started { query, cookie }
}

fn id_token(w: &World, started: &Started, claims: Value) -> String {
    let now = {
        use ibyok::clock::Clock;
        w.env.clock.now().seconds()
    };
    let mut all = json!({"iss": w.issuer.url, "aud": CLIENT, "sub": "ana-sub", "iat": now - 5, "exp": now + 300,
                         "nonce": started.param("nonce"), "email": "ana@acme.example", "email_verified": true,
                         "name": "Ana Lima"});
    for (k, v) in claims.as_object().unwrap() {
        if v.is_null() {
            all.as_object_mut().unwrap().remove(k);
        } else {
            all[k] = v.clone();
        }
    }
    w.key.sign(&json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}), &all)
}

async fn callback(w: &World, provider: &str, state: &str, code: &str, cookie: Option<&str>) -> Resp {
    let path = format!("/auth/{provider}/callback?code={code}&state={state}");
    w.env.call(with_cookie(Req::get(&path), cookie)).await
}

/// The one-time code a finished sign-in hands the console.
fn handed_code(r: &Resp) -> String {
    assert_eq!(r.status, 302, "{}", r.text());
    let location = r.raw.header("location").unwrap();
    location.split_once("#signin=").unwrap_or_else(|| panic!("no code in {location}")).1.to_owned()
}

async fn session(w: &World, code: &str, cookie: Option<&str>) -> Resp {
    w.env.call(with_cookie(Req::post("/auth/session").json(json!({"code": code})), cookie)).await
}

/// A whole OIDC sign-in with `claims` over the good ones: the session.
async fn sign_in_oidc(w: &World, claims: Value) -> Resp {
    let s = start(w, "oidc", "").await;
    w.issuer.answer_id_token(id_token(w, &s, claims));
    let r = callback(w, "oidc", s.param("state"), "provider-code", Some(&s.cookie)).await;
    let code = handed_code(&r);
    session(w, &code, Some(&s.cookie)).await
}

async fn invite(w: &World, body: Value) -> String {
    let r = w.env.call(Req::post("/members").token(&w.env.root).json(body)).await.expect(201);
    r.body["memberId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_invited_person_signs_in_and_their_session_is_an_ordinary_token_of_their_role() {
    let w = world(false).await;
    let key = w.env.add_key(&w.env.root, "OpenAI", "openai", "sk-live-value-1").await;
    let ana = invite(&w, json!({"provider": "oidc", "email": "Ana@Acme.example", "role": "developer"})).await;

    // The providers, as the sign-in page lists them.
    let r = w.env.call(Req::get("/auth/providers")).await.expect(200);
    assert_eq!(r.body["providers"], json!([{"id": "github", "name": "GitHub"}, {"id": "oidc", "name": "Acme SSO"}]));

    // The start: PKCE S256, a nonce, state, our redirect URI.
    let s = start(&w, "oidc", "?returnTo=/console/index.html").await;
    assert_eq!(s.param("code_challenge_method"), "S256");
    assert_eq!(s.param("code_challenge").len(), 43);
    assert_eq!(s.param("redirect_uri"), "https://vault.acme.example/auth/oidc/callback");
    assert_eq!(s.param("client_id"), CLIENT);
    assert!(s.param("nonce").len() >= 43 && s.param("state").len() >= 43);

    // The callback exchanges the code with the verifier and the client's
    // secret, and hands the console a one-time code in the fragment.
    w.issuer.answer_id_token(id_token(&w, &s, json!({})));
    let r = callback(&w, "oidc", s.param("state"), "provider-code", Some(&s.cookie)).await;
    let location = r.raw.header("location").unwrap().to_owned();
    assert!(location.starts_with("/console/index.html#signin="), "{location}");
    let code = handed_code(&r);
    let sent = w.issuer.last_token_request();
    assert!(sent.contains("code_verifier=") && sent.contains("code=provider-code"), "{sent}");
    assert!(sent.to_ascii_lowercase().contains("authorization: basic "), "the client authenticates");

    // Without the browser's cookie the code is refused, and spent.
    let s2 = start(&w, "oidc", "").await;
    w.issuer.answer_id_token(id_token(&w, &s2, json!({})));
    let other = handed_code(&callback(&w, "oidc", s2.param("state"), "c2", Some(&s2.cookie)).await);
    session(&w, &other, None).await.expect_error(401, "unauthorized");
    session(&w, &other, Some(&s2.cookie)).await.expect_error(401, "unauthorized");

    // Redeemed once, with the cookie: the session.
    let r = session(&w, &code, Some(&s.cookie)).await.expect(201);
    assert_eq!(r.body["member"]["memberId"], ana);
    assert_eq!(r.body["member"]["name"], "Ana Lima");
    assert_eq!(r.body["member"]["role"], "developer");
    assert!(r.raw.header("set-cookie").unwrap().contains("Max-Age=0"), "the sign-in cookie is cleared");
    let token = r.body["token"].as_str().unwrap().to_owned();
    session(&w, &code, Some(&s.cookie)).await.expect_error(401, "unauthorized");

    // The session: the developer's scopes, for 12 hours.
    let expires = r.body["expiresAt"].as_str().unwrap().to_owned();
    w.env.read(&token, &key, "production").await.expect(200);
    w.env.call(Req::get("/members").token(&token)).await.expect_error(403, "forbidden");
    let (_, made) = w.env.issue(&token, json!({"name": "ci", "scopes": ["keys:read"], "expiresIn": 2_592_000})).await;
    let listed = w.env.call(Req::get("/tokens").token(&token)).await.expect(200);
    let names: Vec<&str> =
        listed.body["tokens"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"ci") && names.contains(&"Ana Lima (session)"), "{names:?}");
    let ci = listed.body["tokens"].as_array().unwrap().iter().find(|t| t["name"] == "ci").unwrap();
    assert!(ci["expiresAt"].as_str().unwrap() > expires.as_str(), "what a person makes outlives the session");

    // The member is bound to the person; the audit names them.
    let members = w.env.call(Req::get("/members").token(&w.env.root)).await.expect(200);
    let m = &members.body["members"][0];
    assert_eq!((m["subject"].as_str(), m["name"].as_str()), (Some("ana-sub"), Some("Ana Lima")));
    assert!(m["lastSignInAt"].is_string());
    let audit = w.env.call(Req::get("/audit?limit=50").token(&w.env.root)).await.expect(200);
    let signin = audit.body["events"].as_array().unwrap().iter().find(|e| e["action"] == "auth.signin").unwrap();
    assert_eq!(signin["actor"]["kind"], "session");
    assert_eq!(signin["actor"]["memberId"], ana);
    assert_eq!(signin["actor"]["name"], "Ana Lima");
    let created = audit.body["events"].as_array().unwrap().iter().find(|e| e["action"] == "token.create").unwrap();
    assert_eq!(
        (created["actor"]["kind"].as_str(), created["actor"]["name"].as_str()),
        (Some("session"), Some("Ana Lima"))
    );

    // Sign-out ends the session, not what it made.
    w.env.call(Req::delete("/tokens/self").token(&token)).await.expect(204);
    w.env.call(Req::get("/keys").token(&token)).await.expect_error(401, "unauthorized");
    w.env.read(&made, &key, "production").await.expect(200);

    // A demotion ends everything the member made with the old role.
    let r = sign_in_oidc(&w, json!({})).await.expect(201);
    let second = r.body["token"].as_str().unwrap().to_owned();
    w.env
        .call(Req::patch(&format!("/members/{ana}")).token(&w.env.root).json(json!({"role": "viewer"})))
        .await
        .expect(200);
    w.env.call(Req::get("/keys").token(&second)).await.expect_error(401, "unauthorized");
    w.env.read(&made, &key, "production").await.expect_error(401, "unauthorized");

    // Signed in again, a viewer: lists keys, reads no value.
    let r = sign_in_oidc(&w, json!({})).await.expect(201);
    assert_eq!(r.body["member"]["role"], "viewer");
    let viewer = r.body["token"].as_str().unwrap().to_owned();
    w.env.call(Req::get("/keys").token(&viewer)).await.expect(200);
    w.env.read(&viewer, &key, "production").await.expect_error(403, "forbidden");

    // The anchor revoked by hand (the root's DELETE /tokens/{id}): the
    // session ends, the next sign-in is refused once and makes a new anchor.
    let tokens = w.env.call(Req::get("/tokens").token(&w.env.root)).await.expect(200);
    let anchor = tokens.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["memberId"] == ana && t["issuedBy"].is_null() && t["revokedAt"].is_null())
        .unwrap()["tokenId"]
        .as_str()
        .unwrap()
        .to_owned();
    w.env.call(Req::delete(&format!("/tokens/{anchor}")).token(&w.env.root)).await.expect(204);
    w.env.call(Req::get("/keys").token(&viewer)).await.expect_error(401, "unauthorized");
    sign_in_oidc(&w, json!({})).await.expect_error(401, "unauthorized");
    let r = sign_in_oidc(&w, json!({})).await.expect(201);
    let viewer = r.body["token"].as_str().unwrap().to_owned();
    w.env.call(Req::get("/keys").token(&viewer)).await.expect(200);

    // Removal ends the session at its next request.
    w.env.call(Req::delete(&format!("/members/{ana}")).token(&w.env.root)).await.expect(204);
    w.env.call(Req::get("/keys").token(&viewer)).await.expect_error(401, "unauthorized");
    let s = start(&w, "oidc", "").await;
    w.issuer.answer_id_token(id_token(&w, &s, json!({})));
    callback(&w, "oidc", s.param("state"), "c", Some(&s.cookie)).await.expect(403);
}

#[tokio::test]
async fn the_flow_refuses_every_forgery() {
    let w = world(false).await;
    invite(&w, json!({"provider": "oidc", "email": "ana@acme.example", "role": "owner"})).await;

    // Open redirects through returnTo; a CLI address that is not loopback.
    for bad in ["https://evil.example/", "//evil.example/", "/console//evil.example", "/keys", "/console/../x"] {
        let path = format!("/auth/oidc/start?returnTo={}", urlencode(bad));
        w.env.call(Req::get(&path)).await.expect_error(400, "invalid_request");
    }
    let path =
        format!("/auth/oidc/start?cli={}&codeChallenge={}", urlencode("http://evil.example:80/"), "a".repeat(43));
    w.env.call(Req::get(&path)).await.expect_error(400, "invalid_request");
    w.env.call(Req::get("/auth/okta/start")).await.expect_error(404, "not_found");

    // A forged or missing state, a missing cookie, another browser's cookie.
    let s = start(&w, "oidc", "").await;
    assert_eq!(callback(&w, "oidc", "forged", "c", Some(&s.cookie)).await.status, 400);
    assert_eq!(callback(&w, "oidc", s.param("state"), "c", None).await.status, 400);
    let s = start(&w, "oidc", "").await;
    let other = start(&w, "oidc", "").await;
    assert_eq!(callback(&w, "oidc", s.param("state"), "c", Some(&other.cookie)).await.status, 400);
    // A state is used once, even when refused.
    assert_eq!(callback(&w, "oidc", s.param("state"), "c", Some(&s.cookie)).await.status, 400);

    // A state of one provider at the other's callback.
    let s = start(&w, "oidc", "").await;
    w.issuer.github_user(json!({"id": 1, "login": "ana"}));
    assert_eq!(callback(&w, "github", s.param("state"), "good", Some(&s.cookie)).await.status, 400);

    // ID tokens that fail a check: each a 400 page, no code.
    let key2 = SigningKey::ec();
    for (what, claims, signer) in [
        ("aud", json!({"aud": "another-client"}), None),
        ("aud list without azp", json!({"aud": [CLIENT, "another"]}), None),
        ("nonce", json!({"nonce": "replayed-nonce"}), None),
        ("no nonce", json!({"nonce": null}), None),
        ("iss", json!({"iss": "https://evil.example"}), None),
        ("exp", json!({"exp": 1_000_000, "iat": 999_000}), None),
        ("signature", json!({}), Some(&key2)),
    ] {
        let s = start(&w, "oidc", "").await;
        let token = match signer {
            None => id_token(&w, &s, claims),
            Some(k) => {
                let good = id_token(&w, &s, claims);
                let (input, _) = good.rsplit_once('.').unwrap();
                let forged = k.sign(&json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}), &json!({}));
                format!("{input}.{}", forged.rsplit_once('.').unwrap().1)
            }
        };
        w.issuer.answer_id_token(token);
        let r = callback(&w, "oidc", s.param("state"), "c", Some(&s.cookie)).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(r.raw.header("location").is_none(), "{what}");
    }

    // An email the provider did not verify matches no invitation.
    let s = start(&w, "oidc", "").await;
    w.issuer.answer_id_token(id_token(&w, &s, json!({"email_verified": false, "sub": "mallory"})));
    let r = callback(&w, "oidc", s.param("state"), "c", Some(&s.cookie)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("Not a member"));

    // A code is bound to its browser; a made-up code is the same 401.
    session(&w, "made-up", Some(&s.cookie)).await.expect_error(401, "unauthorized");
    // POST /auth/session takes JSON only (no cross-site form can send it).
    let form =
        with_cookie(Req::post("/auth/session").raw_body(Some("application/x-www-form-urlencoded"), b"code=x"), None);
    assert_eq!(w.env.call(form).await.status, 415);
}

/// `s` as a query value.
fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)]).unwrap().trim_start_matches("v=").to_owned()
}

#[tokio::test]
async fn github_people_are_matched_by_their_numeric_id_never_by_login_alone() {
    let w = world(false).await;
    invite(&w, json!({"provider": "github", "login": "Octocat", "role": "viewer"})).await;
    let sign_in = |user: Value| {
        let w = &w;
        async move {
            w.issuer.github_user(user);
            let s = start(w, "github", "").await;
            assert_eq!(s.param("code_challenge_method"), "S256");
            callback(w, "github", s.param("state"), "good", Some(&s.cookie)).await.map_code(&s, w).await
        }
    };
    let r = sign_in(json!({"id": 101, "login": "octocat", "name": "Mona Lisa"})).await.expect(201);
    assert_eq!(r.body["member"]["name"], "Mona Lisa");
    let sent = w.issuer.last_token_request();
    assert!(sent.contains("code_verifier="), "{sent}");
    // Renamed, the same person still signs in.
    sign_in(json!({"id": 101, "login": "mona-renamed", "name": "Mona Lisa"})).await.expect(201);
    // Whoever holds the old login now is someone else: refused.
    w.issuer.github_user(json!({"id": 202, "login": "octocat", "name": "Not Mona"}));
    let s = start(&w, "github", "").await;
    assert_eq!(callback(&w, "github", s.param("state"), "good", Some(&s.cookie)).await.status, 403);
    // GitHub refusing the code.
    let s = start(&w, "github", "").await;
    assert_eq!(callback(&w, "github", s.param("state"), "bad", Some(&s.cookie)).await.status, 400);
}

trait MapCode {
    async fn map_code(self, s: &Started, w: &World) -> Resp;
}

impl MapCode for Resp {
    async fn map_code(self, s: &Started, w: &World) -> Resp {
        let code = handed_code(&self);
        session(w, &code, Some(&s.cookie)).await
    }
}

#[tokio::test]
async fn sign_up_gives_a_newcomer_a_tenant_of_their_own() {
    let w = world(true).await;
    let r = sign_in_oidc(&w, json!({"sub": "bo-sub", "email": "bo@new.example", "name": "Bo"})).await.expect(201);
    assert_eq!(r.body["member"]["role"], "owner");
    let token = r.body["token"].as_str().unwrap().to_owned();
    let members = w.env.call(Req::get("/members").token(&token)).await.expect(200);
    assert_eq!(members.body["members"].as_array().unwrap().len(), 1);
    assert_eq!(members.body["members"][0]["name"], "Bo");
    // Not the operator's tenant.
    let theirs = w.env.call(Req::get("/members").token(&w.env.root)).await.expect(200);
    assert!(theirs.body["members"].as_array().unwrap().is_empty());
    // An OpenID person whose email the provider did not verify makes no tenant.
    let s = start(&w, "oidc", "").await;
    w.issuer.answer_id_token(id_token(
        &w,
        &s,
        json!({"sub": "cy-sub", "email": "cy@new.example", "email_verified": false}),
    ));
    let refused = callback(&w, "oidc", s.param("state"), "c", Some(&s.cookie)).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    // Signing in again finds the same membership.
    let again = sign_in_oidc(&w, json!({"sub": "bo-sub", "email": "bo@new.example", "name": "Bo"})).await.expect(201);
    assert_eq!(again.body["member"]["memberId"], r.body["member"]["memberId"]);
}

#[tokio::test]
async fn the_cli_signs_in_through_a_loopback_redirect_with_its_own_pkce() {
    let w = world(false).await;
    invite(&w, json!({"provider": "oidc", "email": "ana@acme.example", "role": "admin"})).await;
    let verifier = "cli-verifier-0123456789-0123456789-0123456789";
    let challenge = ibyok::signin::pkce_challenge(verifier);
    let cli = urlencode("http://127.0.0.1:53682/callback?state=cli-state");
    let s = start(&w, "oidc", &format!("?cli={cli}&codeChallenge={challenge}")).await;
    w.issuer.answer_id_token(id_token(&w, &s, json!({})));
    let r = callback(&w, "oidc", s.param("state"), "c", Some(&s.cookie)).await.expect(302);
    let location = r.raw.header("location").unwrap().to_owned();
    let code = location.strip_prefix("http://127.0.0.1:53682/callback?state=cli-state&code=").unwrap().to_owned();
    // The browser's cookie does not redeem a CLI's code; a wrong verifier neither.
    let wrong = Req::post("/auth/session").json(json!({"code": code, "codeVerifier": "wrong"}));
    w.env.call(wrong).await.expect_error(401, "unauthorized");
    // A code is taken once: the CLI starts again.
    let s = start(&w, "oidc", &format!("?cli={cli}&codeChallenge={challenge}")).await;
    w.issuer.answer_id_token(id_token(&w, &s, json!({})));
    let r = callback(&w, "oidc", s.param("state"), "c", Some(&s.cookie)).await.expect(302);
    let code = r.raw.header("location").unwrap().rsplit_once("code=").unwrap().1.to_owned();
    let r =
        w.env.call(Req::post("/auth/session").json(json!({"code": code, "codeVerifier": verifier}))).await.expect(201);
    assert_eq!(r.body["member"]["role"], "admin");
}
