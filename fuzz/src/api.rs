//! The `api_request` harness: a small text format for a sequence of HTTP
//! requests, a fresh in-memory service with fixtures for each input, and the
//! contract's checks on every response.
//!
//! An input is an optional preamble of `@` lines, then requests separated by
//! a line `---`:
//!
//! ```text
//! @env development          (IBYOK_ENV; default production)
//! @strict                   (PROD_MOCK_ALLOWED=false)
//! @quota 3                  (tenant `fuzz`'s monthly quota of value reads)
//! @signup                   (IBYOK_SIGNUP=open: a stranger gets a tenant)
//! POST /keys?limit=5
//! auth: root
//! content-type: application/json
//!
//! {"name": "n", "llmType": "openai", "value": "sk-0123456789abcdef"}
//! ---
//! PATCH /keys/{new-key}
//! ...
//! ```
//!
//! Header lines: `auth:` one of `root`, `child`, `narrow`, `revoked`,
//! `expired`, `other`, `limited` (every scope, 2 requests a minute), `last` (the token made by the last `POST /tokens`),
//! `none`, or any other text sent as the raw `Authorization` header (a
//! missing `auth:` line means `root`); `content-type:`, `user-agent:`,
//! `ip:` (the source address), `request-id:`, and `pad:` N (that many spaces
//! appended to the body, to reach the 64 KiB limit); for `POST
//! /github/secret-scanning`, `github-key:` and `github-signature:` (sent as
//! they are) or `sign: KEY` (the body signed as GitHub signs, under `fuzz`,
//! the current key of the process's keys document, or `fuzz-old`, a key
//! that is not current), and the body's placeholders `{root-secret}`,
//! `{child-secret}` and `{revoked-secret}` (tokens, filled in for that route
//! only). Placeholders, replaced
//! in the path, the query, the raw auth header and the body: `{key}`,
//! `{key2}` (keys of the caller's tenant; `child` may see only `{key}`),
//! `{other-key}` (a key of another tenant), `{root}`, `{child}`,
//! `{revoked}` (token ids), `{new-key}` and `{new-token}` (the ids made by
//! the last `POST /keys` and `POST /tokens`).
//!
//! People's sign-in is on, both providers pointed at a stand-in on loopback
//! (OpenID discovery, a token endpoint that refuses every code, GitHub's
//! token endpoint and user), and the GitHub user `octocat` (id 4242) is a
//! `developer` of tenant `fuzz`. GitHub's stand-in takes the code `good`
//! (octocat) and `stranger` (id 999, no member). `cookie:` sends a raw
//! `Cookie` header. The sign-in's secrets are placeholders filled in only
//! where a browser would send them: `{signin-state}` (the `state` of the
//! last `GET /auth/{provider}/start` that answered 302) in the query of a
//! callback, `{signin-cookie}` (its cookie's value) in `cookie:`, and
//! `{signin-code}` (the one-time code of the last callback that answered
//! 302) in the body of `POST /auth/session`; for a CLI's sign-in,
//! `{cli-challenge}` in the query and `{cli-verifier}` in the body (a fixed
//! PKCE pair). A session token is then `auth: last`.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ibyok::api::{body::parse_query, ApiRequest, ApiResponse, App, Route};
use ibyok::clock::{ManualClock, Timestamp};
use ibyok::config::Config;
use ibyok::kms::local::LocalKms;
use ibyok::mode::Environment;
use ibyok::store::memory::MemoryStore;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

/// 2026-11-26T14:34:13Z.
pub const START_MILLIS: i64 = 1_795_703_653_000;
const MAX_REQUESTS: usize = 8;
const MAX_PAD: usize = 70 * 1024;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"))
}

fn kms() -> Arc<LocalKms> {
    static KMS: OnceLock<Arc<LocalKms>> = OnceLock::new();
    KMS.get_or_init(|| Arc::new(LocalKms::ephemeral())).clone()
}

/// GitHub's secret scanning keys, as the process's keys document serves
/// them (on a loopback port, from a thread of its own): `fuzz` (current)
/// and `fuzz-old` (not current).
struct ScanKeys {
    url: String,
    current: EcdsaKeyPair,
    old: EcdsaKeyPair,
}

fn scan_keys() -> &'static ScanKeys {
    static KEYS: OnceLock<ScanKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pair = || {
            let alg = &ECDSA_P256_SHA256_ASN1_SIGNING;
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).expect("a P-256 key");
            EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).expect("a P-256 key")
        };
        let (current, old) = (pair(), pair());
        let pem = |k: &EcdsaKeyPair| {
            let der = k.public_key().as_der().expect("DER");
            format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der.as_ref()))
        };
        let doc = serde_json::json!({"public_keys": [
            {"key_identifier": "fuzz", "key": pem(&current), "is_current": true},
            {"key_identifier": "fuzz-old", "key": pem(&old), "is_current": false},
        ]})
        .to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = format!("http://{}/meta/public_keys/secret_scanning", listener.local_addr().expect("an address"));
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut sock in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    doc.len()
                );
                let _ = sock.write_all(head.as_bytes()).and_then(|()| sock.write_all(doc.as_bytes()));
            }
        });
        ScanKeys { url, current, old }
    })
}

const SCANNING_PATH: &str = "/github/secret-scanning";

/// The CLI's PKCE verifier behind `{cli-verifier}` / `{cli-challenge}`.
const CLI_VERIFIER: &str = "fuzz-cli-verifier-0123456789-0123456789-0123456789";

/// A stand-in for the sign-in providers, on a loopback port (a thread of
/// its own): OpenID discovery naming itself the issuer, a token endpoint
/// that refuses every code (400), and GitHub's token endpoint (`code=good`
/// and `code=stranger` get an access token) and user (octocat, id 4242, or
/// a stranger, id 999). Its URL.
fn provider_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let base = url.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut sock in listener.incoming().flatten() {
                // The head, then as much body as it announces.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).unwrap_or(0);
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf);
                    let Some(end) = text.find("\r\n\r\n") else {
                        if n == 0 {
                            break;
                        }
                        continue;
                    };
                    let head = text[..end].to_ascii_lowercase();
                    let length = head.lines().find_map(|l| l.strip_prefix("content-length:"));
                    let length = length.and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(0);
                    if n == 0 || buf.len() >= end + 4 + length {
                        break;
                    }
                }
                let request = String::from_utf8_lossy(&buf).into_owned();
                let lower = request.to_ascii_lowercase();
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or("/");
                let (status, body) = match path {
                    "/.well-known/openid-configuration" => (
                        "200 OK",
                        serde_json::json!({
                            "issuer": base,
                            "authorization_endpoint": format!("{base}/authorize"),
                            "token_endpoint": format!("{base}/token"),
                            "jwks_uri": format!("{base}/jwks"),
                        }),
                    ),
                    "/jwks" => ("200 OK", serde_json::json!({"keys": []})),
                    "/token" => ("400 Bad Request", serde_json::json!({"error": "invalid_grant"})),
                    "/login/oauth/access_token" if request.contains("code=good&") => {
                        ("200 OK", serde_json::json!({"access_token": "gho_member", "token_type": "bearer"}))
                    }
                    "/login/oauth/access_token" if request.contains("code=stranger&") => {
                        ("200 OK", serde_json::json!({"access_token": "gho_stranger", "token_type": "bearer"}))
                    }
                    "/login/oauth/access_token" => ("200 OK", serde_json::json!({"error": "bad_verification_code"})),
                    "/user" if lower.contains("authorization: bearer gho_member") => {
                        ("200 OK", serde_json::json!({"id": 4242, "login": "octocat", "name": "Fuzz Member"}))
                    }
                    "/user" if lower.contains("authorization: bearer gho_stranger") => {
                        ("200 OK", serde_json::json!({"id": 999, "login": "stranger", "name": "A Stranger"}))
                    }
                    _ => ("401 Unauthorized", serde_json::json!({"message": "Bad credentials"})),
                };
                let body = body.to_string();
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).and_then(|()| sock.write_all(body.as_bytes()));
            }
        });
        url
    })
}

/// One request of an input, before placeholders are filled in.
#[derive(Debug, Default)]
pub struct RawRequest {
    pub method: String,
    pub target: String,
    pub auth: Option<String>,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// `cookie:`: the raw `Cookie` header.
    pub cookie: Option<String>,
    pub pad: usize,
    pub body: Vec<u8>,
    pub github_key: Option<String>,
    pub github_signature: Option<String>,
    /// `sign:`: the key (`fuzz` or `fuzz-old`) that signs the final body.
    pub sign: Option<String>,
}

#[derive(Debug, Default)]
pub struct Script {
    pub environment: Option<String>,
    pub strict: bool,
    pub quota: Option<u64>,
    pub signup: bool,
    pub requests: Vec<RawRequest>,
}

fn split_line(b: &[u8]) -> (&[u8], Option<&[u8]>) {
    match b.iter().position(|&c| c == b'\n') {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end_matches('\r').to_owned()
}

fn parse_request(chunk: &[u8]) -> RawRequest {
    let mut req = RawRequest::default();
    let (first, mut rest) = split_line(chunk);
    let first = text(first);
    let (method, target) = first.split_once(' ').unwrap_or((&first, ""));
    req.method = method.to_owned();
    req.target = target.to_owned();
    while let Some(r) = rest {
        let (line, next) = split_line(r);
        rest = next;
        let line = text(line);
        if line.is_empty() {
            req.body = next.unwrap_or_default().to_vec();
            break;
        }
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim().to_owned();
        match name.trim().to_ascii_lowercase().as_str() {
            "auth" => req.auth = Some(value),
            "content-type" => req.content_type = Some(value),
            "user-agent" => req.user_agent = Some(value),
            "ip" => req.ip = Some(value),
            "request-id" => req.request_id = Some(value),
            "cookie" => req.cookie = Some(value),
            "pad" => req.pad = value.parse::<usize>().unwrap_or(0).min(MAX_PAD),
            "github-key" => req.github_key = Some(value),
            "github-signature" => req.github_signature = Some(value),
            "sign" => req.sign = Some(value),
            _ => {}
        }
    }
    req
}

/// Reads an input. Never fails: whatever does not parse is sent as it is.
pub fn parse_script(data: &[u8]) -> Script {
    let mut script = Script::default();
    let mut rest = data;
    while rest.first() == Some(&b'@') {
        let (line, next) = split_line(rest);
        let line = text(&line[1..]);
        match line.split_once(' ') {
            Some(("env", e)) => script.environment = Some(e.trim().to_owned()),
            Some(("quota", q)) => script.quota = q.trim().parse().ok(),
            _ if line.trim() == "strict" => script.strict = true,
            _ if line.trim() == "signup" => script.signup = true,
            _ => {}
        }
        rest = next.unwrap_or_default();
    }
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 5 <= rest.len() {
        if &rest[i..i + 5] == b"\n---\n" {
            chunks.push(&rest[start..i]);
            start = i + 5;
            i = start;
        } else {
            i += 1;
        }
    }
    chunks.push(&rest[start..]);
    script.requests = chunks.into_iter().take(MAX_REQUESTS).map(parse_request).collect();
    script
}

/// The service of one input and its fixtures.
pub struct World {
    pub app: App,
    /// The fixture keys' value: fresh for each input, so that no input can
    /// carry it (libFuzzer learns the constants a harness compares with,
    /// and one per process it found and echoed in a 400's message) and its
    /// appearance in a response is a leak, not an echo.
    pub value: String,
    pub secrets: Vec<String>,
    pub root: String,
    pub child: String,
    pub narrow: String,
    pub revoked: String,
    pub expired: String,
    pub other: String,
    pub limited: String,
    pub ids: Vec<(&'static str, String)>,
    pub last_token: Option<String>,
    /// The last sign-in's `state`, cookie and one-time code (see the
    /// module's doc), and every one handed out so far: no response body
    /// may carry one.
    pub signin: SignIn,
    pub signin_secrets: Vec<String>,
}

#[derive(Debug, Default)]
pub struct SignIn {
    pub state: String,
    pub cookie: String,
    pub code: String,
}

fn json(resp: &ApiResponse) -> Value {
    serde_json::from_slice(resp.body.expose()).unwrap_or(Value::Null)
}

fn field(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_else(|| panic!("fixture response without {k}: {v}")).to_owned()
}

impl World {
    async fn call(&self, method: &str, path: &str, token: &str, body: Value) -> Value {
        let req = ApiRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            authorization: Some(format!("Bearer {token}").into()),
            content_type: Some("application/json".to_owned()),
            body: if body.is_null() { Vec::new().into() } else { serde_json::to_vec(&body).unwrap().into() },
            ..ApiRequest::default()
        };
        let resp = self.app.handle(req).await;
        assert!(
            resp.status < 300,
            "fixture {method} {path}: {} {}",
            resp.status,
            String::from_utf8_lossy(resp.body.expose())
        );
        json(&resp)
    }

    async fn key(&self, token: &str, name: &str, overrides: Value) -> String {
        let mut body = serde_json::json!({"name": name, "llmType": "openai", "value": self.value});
        if !overrides.is_null() {
            body["modeOverrides"] = overrides;
        }
        field(&self.call("POST", "/keys", token, body).await, "keyId")
    }

    async fn token(&self, token: &str, body: Value) -> (String, String) {
        let v = self.call("POST", "/tokens", token, body).await;
        (field(&v, "tokenId"), field(&v, "token"))
    }

    /// A fresh store and service: tenant `fuzz` with two keys and tokens of
    /// each kind, and tenant `other` with one key.
    pub async fn new(script: &Script) -> World {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(START_MILLIS)));
        let mut config = Config::default();
        if let Some(env) = script.environment.as_deref().and_then(Environment::parse) {
            config.environment = env;
        }
        config.guardrails.prod_mock_allowed = !script.strict;
        config.github_keys_url = scan_keys().url.clone();
        config.allow_loopback_http = true;
        let url = provider_url();
        let signup = if script.signup { "open" } else { "closed" };
        // The providers' client secrets, never in a response: fresh for
        // each input, so that no input can carry one (libFuzzer learns the
        // constants a harness compares with) and its appearance is a leak.
        let github_secret = format!("gh-secret-{}", ibyok::ids::random_base62(24));
        let oidc_secret = format!("oidc-secret-{}", ibyok::ids::random_base62(24));
        let lookup = |k: &str| -> Option<String> {
            Some(
                match k {
                    "IBYOK_PUBLIC_URL" => "https://vault.fuzz.example",
                    "IBYOK_OIDC_ISSUER" | "IBYOK_GITHUB_URL" | "IBYOK_GITHUB_API_URL" => url,
                    "IBYOK_OIDC_CLIENT_ID" => "fuzz-oidc",
                    "IBYOK_OIDC_CLIENT_SECRET" => oidc_secret.as_str(),
                    "IBYOK_GITHUB_CLIENT_ID" => "fuzz-github",
                    "IBYOK_GITHUB_CLIENT_SECRET" => github_secret.as_str(),
                    "IBYOK_SIGNUP" => signup,
                    _ => return None,
                }
                .to_owned(),
            )
        };
        config.sign_in = ibyok::signin::SignInConfig::from_lookup(&lookup).expect("the sign-in configuration");
        let app = App::new(store.clone() as Arc<dyn ibyok::store::Store>, kms(), config).with_clock(clock.clone());
        let now = Timestamp::from_millis(START_MILLIS);
        let a = ibyok::bootstrap::create_tenant(store.as_ref(), "fuzz", now).await.expect("tenant fuzz");
        let b = ibyok::bootstrap::create_tenant(store.as_ref(), "other", now).await.expect("tenant other");
        let mut w = World {
            app,
            value: format!("sk-fixture-{}", ibyok::ids::random_base62(32)),
            secrets: Vec::new(),
            root: a.token.expose_token().to_owned(),
            child: String::new(),
            narrow: String::new(),
            revoked: String::new(),
            expired: String::new(),
            other: b.token.expose_token().to_owned(),
            limited: String::new(),
            ids: vec![("{root}", a.root.token_id.to_string())],
            last_token: None,
            signin: SignIn::default(),
            signin_secrets: Vec::new(),
        };
        let root = w.root.clone();
        let (_, expired) =
            w.token(&root, serde_json::json!({"name": "expired", "scopes": ["keys:read"], "expiresIn": 60})).await;
        clock.advance_seconds(120);
        let key = w.key(&root, "OpenAI Production", Value::Null).await;
        let key2 = w.key(&root, "Anthropic", serde_json::json!({"development": "live"})).await;
        let other_key = w.key(&w.other.clone(), "Other tenant", Value::Null).await;
        let (child_id, child) = w
            .token(
                &root,
                serde_json::json!({"name": "child", "scopes": ["keys:read", "tokens:write"], "keyIds": [key]}),
            )
            .await;
        let (_, narrow) = w
            .token(
                &root,
                serde_json::json!({"name": "narrow", "scopes": ["keys:write"], "allowedCidrs": ["203.0.113.0/24"]}),
            )
            .await;
        let all = ["keys:write", "tokens:write", "settings:write", "usage:read"];
        let (_, limited) = w.token(&root, serde_json::json!({"name": "limited", "scopes": all, "rateLimit": 2})).await;
        let (revoked_id, revoked) =
            w.token(&root, serde_json::json!({"name": "revoked", "scopes": ["keys:read"]})).await;
        let path = format!("/tokens/{revoked_id}");
        w.call("DELETE", &path, &root, Value::Null).await;
        let invite = serde_json::json!({"provider": "github", "login": "octocat", "role": "developer"});
        w.call("POST", "/members", &root, invite).await;
        w.ids.extend([
            ("{key}", key),
            ("{key2}", key2),
            ("{other-key}", other_key),
            ("{child}", child_id),
            ("{revoked}", revoked_id),
        ]);
        (w.child, w.narrow, w.revoked, w.expired, w.limited) = (child, narrow, revoked, expired, limited);
        if let Some(q) = script.quota {
            use ibyok::store::LimitStore;
            store.set_quota(&a.tenant.tenant_id, Some(q)).await.expect("quota");
        }
        w.secrets = vec![
            w.root.clone(),
            w.child.clone(),
            w.narrow.clone(),
            w.revoked.clone(),
            w.expired.clone(),
            w.other.clone(),
            w.limited.clone(),
            github_secret,
            oidc_secret,
        ];
        w
    }

    fn fill(&self, s: &str) -> String {
        if !s.contains('{') {
            return s.to_owned();
        }
        let mut out = s.to_owned();
        for (k, v) in &self.ids {
            out = out.replace(k, v);
        }
        out
    }

    fn fill_bytes(&self, b: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(b) {
            Ok(s) if s.contains('{') => self.fill(s).into_bytes(),
            _ => b.to_vec(),
        }
    }

    /// A report's body with the fixture tokens' secrets in their places.
    fn fill_secrets(&self, b: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(b) {
            Ok(s) if s.contains("-secret}") => s
                .replace("{root-secret}", &self.root)
                .replace("{child-secret}", &self.child)
                .replace("{revoked-secret}", &self.revoked)
                .into_bytes(),
            _ => b.to_vec(),
        }
    }

    fn set_id(&mut self, name: &'static str, id: String) {
        self.ids.retain(|(k, _)| *k != name);
        self.ids.push((name, id));
    }

    /// Sends one request and checks its response against the contract.
    pub async fn send(&mut self, raw: &RawRequest) -> ApiResponse {
        let (path, query) = match raw.target.split_once('?') {
            Some((p, q)) => (self.fill(p), Some(self.fill(q))),
            None => (self.fill(&raw.target), None),
        };
        let matched = ibyok::api::route(&raw.method, &path);
        let route = match matched {
            ibyok::api::Matched::Route(r, _) => Some(r),
            _ => None,
        };
        // A sign-in's secrets only where a browser (or the CLI) sends them.
        let query = query.map(|q| match route {
            Some(Route::FinishSignIn) => q.replace("{signin-state}", &self.signin.state),
            Some(Route::StartSignIn) => q.replace("{cli-challenge}", &ibyok::signin::pkce_challenge(CLI_VERIFIER)),
            _ => q,
        });
        let cookie = raw.cookie.as_deref().map(|c| c.replace("{signin-cookie}", &self.signin.cookie));
        let auth = match raw.auth.as_deref().unwrap_or("root") {
            "root" => Some(format!("Bearer {}", self.root)),
            "child" => Some(format!("Bearer {}", self.child)),
            "narrow" => Some(format!("Bearer {}", self.narrow)),
            "revoked" => Some(format!("Bearer {}", self.revoked)),
            "expired" => Some(format!("Bearer {}", self.expired)),
            "other" => Some(format!("Bearer {}", self.other)),
            "limited" => Some(format!("Bearer {}", self.limited)),
            "last" => self.last_token.as_ref().map(|t| format!("Bearer {t}")),
            "none" => None,
            other => Some(self.fill(other)),
        };
        let scanning = path == SCANNING_PATH;
        let mut body = self.fill_bytes(&raw.body);
        if scanning {
            body = self.fill_secrets(&body);
        }
        if route == Some(Route::CreateSession) {
            if let Ok(s) = std::str::from_utf8(&body) {
                body =
                    s.replace("{signin-code}", &self.signin.code).replace("{cli-verifier}", CLI_VERIFIER).into_bytes();
            }
        }
        body.resize(body.len() + raw.pad, b' ');
        let (mut github_key_id, mut github_signature) = (raw.github_key.clone(), raw.github_signature.clone());
        if let Some(key) = raw.sign.as_deref() {
            let pair = if key == "fuzz-old" { &scan_keys().old } else { &scan_keys().current };
            let sig = pair.sign(&SystemRandom::new(), &body).expect("a signature");
            github_key_id = github_key_id.or_else(|| Some(key.to_owned()));
            github_signature = Some(STANDARD.encode(sig.as_ref()));
        }
        let reported = scanning.then(|| ibyok::scanning::parse_report(&body).ok()).flatten();
        let req = ApiRequest {
            method: raw.method.clone(),
            path: path.clone(),
            query: parse_query(query.as_deref()),
            authorization: auth.map(Into::into),
            content_type: raw.content_type.clone(),
            user_agent: raw.user_agent.clone(),
            source_ip: raw.ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok()),
            request_id: raw.request_id.clone().unwrap_or_default(),
            body: body.into(),
            cookie: cookie.map(Into::into),
            github_key_id,
            github_signature,
        };
        let resp = self.app.handle(req).await;
        let what = format!("{} {:?}", raw.method, raw.target);
        check(&resp, route, &what, raw.request_id.as_deref());
        if resp.status == 200 && json(&resp).is_array() {
            check_feedback(&json(&resp), reported.as_deref(), &what);
        }
        let leaked = |s: &str| !s.is_empty() && resp.body.expose().windows(s.len()).any(|w| w == s.as_bytes());
        for s in &self.secrets {
            assert!(!leaked(s), "{what}: the response carries an existing token secret");
        }
        for s in &self.signin_secrets {
            assert!(!leaked(s), "{what}: the response carries a sign-in's state, cookie or code");
        }
        let reads_value = route == Some(Route::ReadValue);
        if !(reads_value && resp.status == 200) {
            assert!(!leaked(&self.value), "{what}: status {} carries a key value", resp.status);
        }
        self.follow_sign_in(&resp, route);
        if resp.status == 201 {
            let v = json(&resp);
            if let Some(id) = v.get("keyId").and_then(Value::as_str) {
                assert!(v.get("value").is_none(), "{what}: a created key shows its value");
                self.set_id("{new-key}", id.to_owned());
            }
            if let Some(id) = v.get("tokenId").and_then(Value::as_str) {
                self.set_id("{new-token}", id.to_owned());
                let secret = v.get("token").and_then(Value::as_str).expect("201 of a new token has `token`");
                assert!(ibyok::token::ParsedToken::parse(secret).is_some(), "{what}: a new token that does not parse");
                self.last_token = Some(secret.to_owned());
                self.secrets.push(secret.to_owned());
            }
        }
        resp
    }

    /// Keeps what a browser would from a sign-in's redirects: the state and
    /// cookie of a start, the one-time code of a callback.
    fn follow_sign_in(&mut self, resp: &ApiResponse, route: Option<Route>) {
        if resp.status != 302 {
            return;
        }
        let location = resp.header("location").unwrap_or_default();
        match route {
            Some(Route::StartSignIn) => {
                let query = parse_query(location.split_once('?').map(|(_, q)| q));
                let state = query.into_iter().find(|(k, _)| k == "state").map(|(_, v)| v).unwrap_or_default();
                let set_cookie = resp.header("set-cookie").unwrap_or_default();
                let cookie = set_cookie.split(';').next().unwrap_or_default();
                let cookie = cookie.strip_prefix("ibyok_signin=").unwrap_or_default().to_owned();
                assert!(state.len() >= 43 && cookie.len() >= 43, "a start without a fresh state and cookie");
                self.signin_secrets.extend([state.clone(), cookie.clone()]);
                (self.signin.state, self.signin.cookie) = (state, cookie);
            }
            Some(Route::FinishSignIn) => {
                let code = match location.split_once("#signin=") {
                    Some((_, code)) => code.to_owned(),
                    None => location.rsplit_once("code=").map(|(_, c)| c.to_owned()).unwrap_or_default(),
                };
                assert!(code.len() >= 43, "a callback's redirect without a one-time code: {location}");
                self.signin_secrets.push(code.clone());
                self.signin.code = code;
            }
            _ => {}
        }
    }
}

/// The status each error code goes with (API.md, "Errors").
fn codes_for(status: u16) -> &'static [&'static str] {
    match status {
        429 => &["rate_limited", "quota_exceeded"],
        s => code_for(s).map_or(&[], std::slice::from_ref),
    }
}

fn code_for(status: u16) -> Option<&'static &'static str> {
    Some(match status {
        400 => &"invalid_request",
        401 => &"unauthorized",
        403 => &"forbidden",
        404 => &"not_found",
        405 => &"method_not_allowed",
        409 => &"conflict",
        413 => &"payload_too_large",
        415 => &"unsupported_media_type",
        _ => return None,
    })
}

/// GitHub's feedback (`POST /github/secret-scanning`): one entry per
/// reported match, in order, each `{token_hash, token_type, label}`; a
/// `true_positive` only for a string with a token's format and checksum.
fn check_feedback(v: &Value, reported: Option<&[ibyok::scanning::Reported]>, what: &str) {
    let entries = v.as_array().expect("an array");
    let reported = reported.unwrap_or_else(|| panic!("{what}: 200 with an array to a body that is no report"));
    assert_eq!(entries.len(), reported.len(), "{what}: one entry per match");
    for (e, r) in entries.iter().zip(reported) {
        let obj = e.as_object().unwrap_or_else(|| panic!("{what}: an entry that is no object: {e}"));
        assert_eq!(obj.len(), 3, "{what}: {e}");
        assert_eq!(e["token_hash"], Value::from(ibyok::scanning::token_hash(&r.token)), "{what}: {e}");
        assert_eq!(e["token_type"], Value::from(r.token_type.clone()), "{what}: {e}");
        match e["label"].as_str() {
            Some("false_positive") => {}
            Some("true_positive") => {
                assert!(
                    ibyok::token::ParsedToken::parse(&r.token).is_some(),
                    "{what}: a true positive that is no token"
                )
            }
            _ => panic!("{what}: a label that is neither: {e}"),
        }
    }
}

/// The contract's rules for any response of `route` (`None`: no route).
pub fn check(resp: &ApiResponse, route: Option<Route>, what: &str, request_id: Option<&str>) {
    let body = String::from_utf8_lossy(resp.body.expose());
    assert!(resp.status < 500, "{what}: status {} (body {body})", resp.status);
    assert!((200..500).contains(&resp.status), "{what}: status {}", resp.status);
    let rid = resp.header("x-request-id").unwrap_or_else(|| panic!("{what}: no x-request-id"));
    assert!(!rid.is_empty(), "{what}: empty x-request-id");
    if let Some(given) = request_id.filter(|r| !r.is_empty()) {
        assert_eq!(rid, given, "{what}: x-request-id is not the request's id");
    }
    if resp.status == 204 {
        assert!(resp.body.expose().is_empty(), "{what}: a 204 with a body");
        return;
    }
    if route == Some(Route::CreateSession) && resp.status == 201 {
        // The session is never cached, and the sign-in's cookie is cleared.
        assert_eq!(resp.header("cache-control"), Some("no-store"), "{what}");
        let cookie = resp.header("set-cookie").unwrap_or_default();
        assert!(cookie.starts_with("ibyok_signin=;") && cookie.contains("Max-Age=0"), "{what}: {cookie}");
    }
    if resp.status == 302 {
        // Only a sign-in redirects: never to another origin than the
        // provider's, the console's own paths or the CLI's loopback.
        assert!(matches!(route, Some(Route::StartSignIn | Route::FinishSignIn)), "{what}: a 302");
        assert!(resp.body.expose().is_empty(), "{what}: a 302 with a body");
        assert_eq!(resp.header("cache-control"), Some("no-store"), "{what}");
        let location = resp.header("location").unwrap_or_else(|| panic!("{what}: a 302 without Location"));
        let allowed = match route {
            Some(Route::StartSignIn) => location.starts_with(&format!("{}/", provider_url())),
            _ => {
                (location.starts_with("/console/") && !location.starts_with("/console//"))
                    || location.starts_with("http://127.0.0.1:")
                    || location.starts_with("http://[::1]:")
            }
        };
        assert!(allowed, "{what}: redirects to {location}");
        if route == Some(Route::StartSignIn) {
            let cookie = resp.header("set-cookie").unwrap_or_else(|| panic!("{what}: a start without its cookie"));
            assert!(
                cookie.starts_with("ibyok_signin=") && cookie.contains("; HttpOnly; SameSite=Lax"),
                "{what}: {cookie}"
            );
            assert!(cookie.ends_with("; Secure"), "{what}: a cookie without Secure for an https origin: {cookie}");
        }
        return;
    }
    if route == Some(Route::FinishSignIn) && matches!(resp.status, 400 | 403) {
        // A page for the person: HTML, no script, nothing of the request.
        assert_eq!(resp.header("content-type"), Some("text/html; charset=utf-8"), "{what}: status {}", resp.status);
        assert!(resp.header("content-security-policy").is_some(), "{what}: a page without its CSP");
        assert_eq!(resp.header("cache-control"), Some("no-store"), "{what}");
        assert!(!body.to_ascii_lowercase().contains("<script"), "{what}: a page with a script: {body}");
        assert!(body.contains("<h1>") && body.contains("href=\"/console/\""), "{what}: {body}");
        return;
    }
    assert_eq!(resp.header("content-type"), Some("application/json"), "{what}: status {}", resp.status);
    let v: Value = serde_json::from_slice(resp.body.expose())
        .unwrap_or_else(|e| panic!("{what}: status {} body not JSON ({e}): {body}", resp.status));
    // (GitHub's feedback, the one array, is checked by `check_feedback`.)
    assert!(v.is_object() || (resp.status == 200 && v.is_array()), "{what}: body is not an object: {body}");
    if resp.status >= 400 {
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 1, "{what}: error body has other fields: {body}");
        let err =
            obj.get("error").and_then(Value::as_object).unwrap_or_else(|| panic!("{what}: no `error` object: {body}"));
        assert_eq!(err.len(), 2, "{what}: `error` has other fields: {body}");
        let code = err.get("code").and_then(Value::as_str).unwrap_or_else(|| panic!("{what}: no `error.code`: {body}"));
        let message =
            err.get("message").and_then(Value::as_str).unwrap_or_else(|| panic!("{what}: no `error.message`: {body}"));
        assert!(codes_for(resp.status).contains(&code), "{what}: status {} with code {code}", resp.status);
        if resp.status == 429 {
            let retry = resp.header("retry-after").and_then(|r| r.parse::<u64>().ok());
            assert!(retry.is_some_and(|r| r >= 1), "{what}: 429 without a Retry-After in seconds");
        }
        assert!(!message.trim().is_empty(), "{what}: empty error message");
        if resp.status == 405 {
            // (When the library sends `Allow`, it names at least one method.)
            if let Some(allow) = resp.header("allow") {
                assert!(!allow.trim().is_empty(), "{what}: an empty Allow header");
            }
        }
        if resp.status == 401 {
            assert_eq!(resp.header("www-authenticate"), Some("Bearer"), "{what}: 401 without WWW-Authenticate");
        }
    }
}

/// Runs one input: a fresh world, then each request in turn.
pub fn run(data: &[u8]) -> Vec<u16> {
    let script = parse_script(data);
    runtime().block_on(async {
        let mut world = World::new(&script).await;
        let mut statuses = Vec::new();
        for raw in &script.requests {
            statuses.push(world.send(raw).await.status);
        }
        statuses
    })
}
