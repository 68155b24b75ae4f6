//! Writes the hand-made seeds: tokens from `ParsedToken::generate()` (and
//! near misses) for `token_parse`, and request scripts after the bodies of
//! the contract (shared/spec/API.md) for `api_request`, each of which is run
//! once through the harness here, its statuses printed.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seeds -- fuzz/corpus

use ibyok::token::{checksum, ParsedToken, PREFIX, TOKEN_LEN};
use std::path::Path;

const API_SEEDS: &[(&str, &str)] = &[
    (
        "signin-browser",
        "GET /auth/providers\nauth: none\n\n---\n\
GET /auth/github/start?returnTo=/console/keys.html\nauth: none\n\n---\n\
GET /auth/github/callback?code=good&state={signin-state}\nauth: none\ncookie: theme=dark; ibyok_signin={signin-cookie}\n\n---\n\
POST /auth/session\nauth: none\ncookie: ibyok_signin={signin-cookie}\ncontent-type: application/json\n\n{\"code\": \"{signin-code}\"}\n---\n\
GET /keys\nauth: last\n\n---\n\
POST /auth/session\nauth: none\ncookie: ibyok_signin={signin-cookie}\ncontent-type: application/json\n\n{\"code\": \"{signin-code}\"}\n---\n\
DELETE /tokens/self\nauth: last\n\n---\n\
GET /keys\nauth: last\n",
    ),
    (
        "signin-refusals",
        "GET /auth/github/start\nauth: none\n\n---\n\
GET /auth/github/callback?code=good&state={signin-state}\nauth: none\n\n---\n\
GET /auth/github/callback?code=stranger&state={signin-state}\nauth: none\ncookie: ibyok_signin={signin-cookie}\n\n---\n\
GET /auth/oidc/start?returnTo=https://evil.example/\nauth: none\n\n---\n\
GET /auth/oidc/start\nauth: none\n\n---\n\
GET /auth/oidc/callback?error=access_denied&state={signin-state}\nauth: none\ncookie: ibyok_signin={signin-cookie}\n\n---\n\
GET /auth/okta/start\nauth: none\n\n---\n\
POST /auth/session\nauth: none\ncontent-type: application/x-www-form-urlencoded\n\ncode=x\n",
    ),
    (
        "signin-cli",
        "GET /auth/github/start?cli=http://127.0.0.1:53682/callback&codeChallenge={cli-challenge}\nauth: none\n\n---\n\
GET /auth/github/callback?code=good&state={signin-state}\nauth: none\ncookie: ibyok_signin={signin-cookie}\n\n---\n\
POST /auth/session\nauth: none\ncontent-type: application/json\n\n{\"code\": \"{signin-code}\", \"codeVerifier\": \"wrong\"}\n---\n\
GET /auth/github/start?cli=http://[::1]:9/?x=1&codeChallenge={cli-challenge}\nauth: none\n\n---\n\
GET /auth/github/callback?code=good&state={signin-state}\nauth: none\ncookie: ibyok_signin={signin-cookie}\n\n---\n\
POST /auth/session\nauth: none\ncontent-type: application/json\n\n{\"code\": \"{signin-code}\", \"codeVerifier\": \"{cli-verifier}\"}\n---\n\
GET /tokens\nauth: last\n\n---\n\
POST /auth/oidc/start\nauth: none\n",
    ),
    (
        "signin-signup",
        "@signup\nGET /auth/github/start\nauth: none\n\n---\n\
GET /auth/github/callback?code=stranger&state={signin-state}\nauth: none\ncookie: ibyok_signin={signin-cookie}\n\n---\n\
POST /auth/session\nauth: root\ncookie: ibyok_signin={signin-cookie}\ncontent-type: application/json\n\n{\"code\": \"{signin-code}\"}\n---\n\
GET /members\nauth: last\n\n---\n\
GET /keys\nauth: last\n",
    ),
    (
        "secret-scanning",
        "POST /github/secret-scanning\nauth: none\nsign: fuzz\ncontent-type: application/json\n\n\
[{\"token\":\"{child-secret}\",\"type\":\"ibyok_token\",\"url\":\"https://github.com/o/r/blob/1/.env\",\"source\":\"content\"},\
{\"token\":\"ibyok_EXAMPLEleakedEXAMPLEleakedEXAMPLE00000\",\"type\":\"ibyok_token\"},{\"token\":\"ghp_x\",\"type\":\"t\"}]\n---\n\
GET /keys\nauth: child\n\n---\n\
POST /github/secret-scanning\nauth: none\nsign: fuzz\ncontent-type: application/json\n\n[{\"token\":\"{child-secret}\",\"type\":\"ibyok_token\"}]\n---\n\
GET /audit?limit=5\n\n---\n\
POST /github/secret-scanning\nauth: none\nsign: fuzz-old\ncontent-type: application/json\n\n[{\"token\":\"{root-secret}\",\"type\":\"ibyok_token\"}]\n---\n\
POST /github/secret-scanning\nauth: none\ngithub-key: fuzz\ngithub-signature: MEUCIQ==\ncontent-type: application/json\n\n[]\n---\n\
POST /github/secret-scanning\nauth: none\nsign: fuzz\n\n{\"token\": 1}\n",
    ),
    (
        "rate-limit",
        "POST /tokens\ncontent-type: application/json\n\n\
{\"name\": \"limited\", \"scopes\": [\"keys:read\", \"tokens:write\"], \"rateLimit\": 2}\n---\n\
POST /tokens\nauth: last\ncontent-type: application/json\n\n{\"name\": \"wider\", \"scopes\": [\"keys:read\"], \"rateLimit\": 3}\n---\n\
GET /external/keys/{key}/value\nauth: last\n\n---\n\
GET /external/keys/{key}/value\nauth: last\n\n---\n\
GET /keys\nauth: limited\n\n---\n\
GET /keys\nauth: limited\n\n---\n\
GET /keys\nauth: limited\n\n---\n\
POST /tokens\ncontent-type: application/json\n\n{\"name\": \"bad\", \"scopes\": [\"keys:read\"], \"rateLimit\": 0}\n",
    ),
    (
        "quota",
        "@quota 2\nGET /external/keys/{key}/value?env=dev\n\n---\n\
GET /external/keys/{key2}/value?env=prod\n\n---\n\
GET /external/keys/{key}/value?env=dev\n\n---\n\
GET /usage\n",
    ),
    (
        "create-key",
        "POST /keys\nauth: root\ncontent-type: application/json\n\n\
{\"name\": \"OpenAI Production\", \"llmType\": \"openai\", \"value\": \"sk-proj-0123456789abcdefXy9Q\",\n \"modeOverrides\": {\"development\": \"live\"}}",
    ),
    (
        "key-lifecycle",
        "POST /keys\ncontent-type: application/json\n\n{\"name\": \"k\", \"llmType\": \"my-provider\", \"value\": \"short\"}\n---\n\
PATCH /keys/{new-key}\ncontent-type: application/json; charset=utf-8\n\n{\"name\": \"renamed\", \"modeOverrides\": {\"development\": null, \"staging\": \"live\"}}\n---\n\
PUT /keys/{new-key}/value\ncontent-type: application/json\n\n{\"value\": \"sk-ant-rotated-0123456789\"}\n---\n\
GET /external/keys/{new-key}/value?env=staging\n\n---\n\
GET /keys/{new-key}\n\n---\n\
DELETE /keys/{new-key}\n\n---\n\
GET /keys/{new-key}\n",
    ),
    (
        "issue-token",
        "POST /tokens\ncontent-type: application/json\n\n\
{\"name\": \"billing-service\", \"scopes\": [\"keys:read\"],\n \"expiresIn\": 86400, \"keyIds\": [\"{key}\"], \"allowedCidrs\": [\"203.0.113.0/24\"]}\n---\n\
GET /external/keys/{key}/value?env=dev\nauth: last\nip: 203.0.113.7\nuser-agent: billing/1.0\n\n---\n\
GET /external/keys/{key}/value\nauth: last\nip: 198.51.100.1\n\n---\n\
GET /keys\nauth: last\nip: 203.0.113.9\n",
    ),
    (
        "child-issues",
        "POST /tokens\nauth: child\ncontent-type: application/json\n\n{\"name\": \"grandchild\", \"scopes\": [\"keys:read\"], \"expiresIn\": 60}\n---\n\
POST /tokens\nauth: child\ncontent-type: application/json\n\n{\"name\": \"escalate\", \"scopes\": [\"keys:read\"], \"keyIds\": [\"{key2}\"]}\n---\n\
GET /tokens\nauth: child\n\n---\n\
DELETE /tokens/{new-token}\nauth: child\n\n---\n\
DELETE /tokens/self\nauth: child\n\n---\n\
GET /keys\nauth: child\n",
    ),
    (
        "modes",
        "GET /settings/modes\n\n---\n\
PUT /settings/modes\ncontent-type: application/json\n\n{\"development\": \"live\", \"staging\": \"mock\", \"production\": \"live\"}\n---\n\
PUT /settings/modes\ncontent-type: application/json\n\n{\"qa\": \"mock\"}\n---\n\
GET /external/keys/{key2}/value?env=development\n",
    ),
    (
        "strict",
        "@strict\n@env development\nPUT /settings/modes\ncontent-type: application/json\n\n{\"production\": \"mock\"}\n---\n\
POST /keys\ncontent-type: application/json\n\n{\"name\": \"n\", \"llmType\": \"groq\", \"value\": \"gsk-0123456789abcdef\", \"modeOverrides\": {\"production\": \"mock\"}}\n---\n\
GET /external/keys/{key}/value?env=prod\n---\n\
GET /external/keys/{key}/value\n",
    ),
    (
        "lists",
        "GET /keys?limit=1\n\n---\nGET /tokens?limit=100&cursor=abc\n\n---\nGET /usage\n\n---\nGET /audit?limit=2\n\n---\nGET /keys?limit=0\n\n---\nGET /audit?cursor=\n",
    ),
    (
        "revoke",
        "DELETE /tokens/{child}\n\n---\nGET /keys\nauth: child\n\n---\nDELETE /tokens/{child}\n\n---\nDELETE /tokens/{revoked}\n\n---\nDELETE /tokens/tok_0000000000000000000000\n",
    ),
    (
        "errors",
        "POST /keys\ncontent-type: text/plain\n\nname=x\n---\n\
POST /keys\ncontent-type: application/json\npad: 66000\n\n{}\n---\n\
POST /keys\ncontent-type: application/json\n\n{\"name\": \n---\n\
PATCH /keys/{key}\ncontent-type: application/json\n\n{}\n---\n\
PUT /keys\n\n---\n\
GET /nope\n\n---\n\
GET /keys\nauth: none\n\n---\n\
GET /keys\nauth: Bearer ibyok_0000000000000000000000000000000000000\n",
    ),
    (
        "versions",
        "PUT /keys/{key}/value\ncontent-type: application/json\n\n{\"value\": \"sk-next-version-0123456789\", \"stage\": \"pending\"}\n---\n\
GET /external/keys/{key}/value?env=prod&version=pending\n\n---\n\
POST /keys/{key}/promote\ncontent-type: application/json\n\n{\"previousValidFor\": 3600}\n---\n\
GET /external/keys/{key}/value?env=prod&version=previous\n\n---\n\
GET /external/keys/{key}/value?env=dev&version=1\nauth: child\n\n---\n\
GET /keys/{key}/versions\n\n---\n\
POST /keys/{key}/promote\n\n---\n\
PUT /keys/{key2}/value\ncontent-type: application/json\n\n{\"value\": \"sk-next-version-0123456789\", \"stage\": \"later\", \"previousValidFor\": -1}\n",
    ),
    (
        "denied",
        "GET /keys\nauth: expired\n\n---\nGET /keys\nauth: revoked\n\n---\nGET /keys/{other-key}\n\n---\n\
GET /keys/{key}\nauth: other\n\n---\nGET /external/keys/{key2}/value\nauth: child\n\n---\n\
POST /keys\nauth: narrow\nip: 203.0.113.1\ncontent-type: application/json\n\n{\"name\": \"n\", \"llmType\": \"openai\", \"value\": \"sk-0123456789abcdef\"}\n---\n\
PUT /settings/modes\nauth: child\ncontent-type: application/json\n\n{\"development\": \"live\"}\n",
    ),
];

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("seed");
}

fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".to_owned());
    let root = Path::new(&root);

    let tokens = root.join("token_parse");
    for i in 0..3 {
        let t = ParsedToken::generate();
        write(&tokens, &format!("seed-valid-{i}"), t.secret().expose_token().as_bytes());
    }
    let t = ParsedToken::generate();
    let raw = t.secret().expose_token().to_owned();
    let body = &raw[..TOKEN_LEN - 6];
    let mut bad_sum = raw.clone().into_bytes();
    bad_sum[TOKEN_LEN - 1] = if bad_sum[TOKEN_LEN - 1] == b'0' { b'1' } else { b'0' };
    write(&tokens, "seed-bad-checksum", &bad_sum);
    write(&tokens, "seed-truncated", &raw.as_bytes()[..TOKEN_LEN - 1]);
    write(&tokens, "seed-padded", format!("  {raw}\n").as_bytes());
    write(&tokens, "seed-wrong-prefix", format!("IBYOK_{}", &raw[PREFIX.len()..]).as_bytes());
    assert_eq!(checksum(body), raw[TOKEN_LEN - 6..]);

    let api = root.join("api_request");
    for (name, script) in API_SEEDS {
        write(&api, &format!("seed-{name}"), script.as_bytes());
        let statuses = ibyok_fuzz::api::run(script.as_bytes());
        println!("api_request seed-{name}: {statuses:?}");
    }
    println!("seeds written under {}", root.display());
}
