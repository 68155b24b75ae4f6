//! Leaked-token reports from secret scanning services: GitHub's secret
//! scanning partner program (`POST /github/secret-scanning`).
//!
//! GitHub finds strings matching [`TOKEN_PATTERN`] in public repositories
//! (and gists, issues, packages, …) and POSTs them here in batches, a JSON
//! array of `{token, type, url, source}`, signed with ECDSA P-256 / SHA-256
//! over the raw body: the `Github-Public-Key-Identifier` header names the
//! key, `Github-Public-Key-Signature` carries the base64 DER signature. The
//! keys are published at [`GITHUB_KEYS_URL`] (`{"public_keys": [{
//! "key_identifier", "key" (PEM), "is_current"}]}`); only current ones
//! verify. They are kept in a [`KeyCache`] (its rules: a key id not cached
//! fetches the document again at most once a minute; cached keys are
//! fetched again after an hour).
//!
//! Here: the keys document, the signature check, the report's parse and the
//! answer's entries. The route is `api::scanning`.

use crate::clock::Timestamp;
use crate::fetch::Policy;
use crate::keycache::{get_json, KeyCache, KeyLookup};
use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_ASN1};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// GitHub's document of its secret scanning keys (`IBYOK_GITHUB_KEYS_URL`
/// overrides it: `ibyok dev --github-keys-url`, the tests).
pub const GITHUB_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";

/// The request's headers, lower case.
pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";

/// The token format as a regular expression, as a deployment registers it
/// with GitHub: the prefix, then 32 random and 6 checksum characters of
/// base62 ([`crate::token`]). A match is confirmed by its checksum here
/// before anything is looked up.
pub const TOKEN_PATTERN: &str = "ibyok_[0-9A-Za-z]{38}";

/// Reports that name a token-shaped string, counted across the deployment
/// per UTC minute (429 past it). GitHub sends a report per batch of matches
/// (up to thousands of them): 120 a minute is far above its pace, and bounds
/// the lookups that replays of a signed report can cause.
pub const REPORTS_PER_MINUTE: u32 = 120;

/// The longest `url` and `source` kept in an audit event and a notice
/// (longer ones are cut, with `…`).
pub const MAX_URL_CHARS: usize = 1_000;
pub const MAX_SOURCE_CHARS: usize = 100;

/// A current key of GitHub's, parsed (a P-256 `SubjectPublicKeyInfo`).
#[derive(Clone)]
pub struct ReporterKey(ParsedPublicKey);

impl std::fmt::Debug for ReporterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReporterKey")
    }
}

impl ReporterKey {
    /// A PEM `PUBLIC KEY` block of a P-256 key; anything else is `None`.
    pub fn from_pem(pem: &str) -> Option<Self> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PUBLIC KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PUBLIC KEY-----")
            .collect();
        let der = STANDARD.decode(body).ok()?;
        ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der).ok().map(Self)
    }

    /// Whether `signature` (base64 of an ASN.1 DER ECDSA signature) signs
    /// `body`, byte for byte.
    pub fn verifies(&self, body: &[u8], signature: &str) -> bool {
        let Ok(sig) = STANDARD.decode(signature.trim()) else { return false };
        self.0.verify_sig(body, &sig).is_ok()
    }
}

/// The current keys of a keys document, by `key_identifier`. Keys that are
/// not current, or do not parse, are left out.
pub fn current_keys(doc: &Value) -> Result<HashMap<String, ReporterKey>, String> {
    let keys = doc.get("public_keys").and_then(Value::as_array).ok_or("no public_keys")?;
    Ok(keys
        .iter()
        .filter(|k| k.get("is_current").and_then(Value::as_bool) == Some(true))
        .filter_map(|k| {
            let id = k.get("key_identifier").and_then(Value::as_str)?;
            let key = ReporterKey::from_pem(k.get("key").and_then(Value::as_str)?)?;
            Some((id.to_owned(), key))
        })
        .collect())
}

/// GitHub's keys, per instance.
pub struct ReporterKeys(KeyCache<ReporterKey>);

impl ReporterKeys {
    pub fn new(policy: Policy) -> Self {
        Self(KeyCache::new(policy))
    }

    /// The current key `id` of the document at `url`.
    pub async fn key(&self, url: &str, id: &str, now: Timestamp) -> KeyLookup<ReporterKey> {
        let policy = *self.0.policy();
        let fetch = async move { current_keys(&get_json(url, &policy).await?).map_err(|e| format!("{url}: {e}")) };
        self.0.key(url, id, now, fetch).await
    }
}

/// One reported match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reported {
    pub token: String,
    pub token_type: String,
    pub url: String,
    pub source: String,
}

/// The body: a JSON array of `{token, type, url, source}` objects (`token`
/// and `type` strings; `url` and `source` strings when present; other
/// fields ignored, as GitHub may add some).
pub fn parse_report(body: &[u8]) -> Result<Vec<Reported>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| "body: malformed JSON".to_owned())?;
    let Value::Array(entries) = value else { return Err("body: must be a JSON array".into()) };
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let field = |name: &str, required: bool| match e.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                None | Some(Value::Null) if !required => Ok(String::new()),
                _ if !e.is_object() => Err(format!("body[{i}]: must be an object")),
                _ => Err(format!("body[{i}].{name}: must be a string")),
            };
            Ok(Reported {
                token: field("token", true)?,
                token_type: field("type", true)?,
                url: field("url", false)?,
                source: field("source", false)?,
            })
        })
        .collect()
}

/// `true_positive` or `false_positive`, as GitHub's feedback names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// A token this deployment issued (live, revoked or expired).
    TruePositive,
    /// Anything else: not a token's shape, a checksum that does not hold,
    /// or a token this deployment does not hold (another deployment's, or
    /// one deleted after its expiry).
    FalsePositive,
}

/// One entry of the answer, in the order of the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Feedback {
    /// Hex SHA-256 of the reported string.
    pub token_hash: String,
    pub token_type: String,
    pub label: Label,
}

/// Hex SHA-256 of `token`.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `s` cut to `max` characters, the last one `…` when it was cut.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some(_) => {
            let end = s.char_indices().nth(max - 1).map_or(s.len(), |(i, _)| i);
            format!("{}…", &s[..end])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    fn pair() -> EcdsaKeyPair {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new()).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap()
    }

    fn pem(k: &EcdsaKeyPair) -> String {
        let der = k.public_key().as_der().unwrap();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der.as_ref()))
    }

    #[test]
    fn a_signature_verifies_only_its_own_bytes_with_its_own_key() {
        let (k, other) = (pair(), pair());
        let key = ReporterKey::from_pem(&pem(&k)).unwrap();
        let body = br#"[{"token":"x","type":"ibyok_token","url":"u","source":"content"}]"#;
        let sig = STANDARD.encode(k.sign(&SystemRandom::new(), body).unwrap().as_ref());
        assert!(key.verifies(body, &sig));
        assert!(!key.verifies(br#"[{"token": "x","type":"ibyok_token","url":"u","source":"content"}]"#, &sig));
        assert!(!ReporterKey::from_pem(&pem(&other)).unwrap().verifies(body, &sig));
        assert!(!key.verifies(body, "not base64!"));
        assert!(!key.verifies(body, ""));
    }

    #[test]
    fn only_current_keys_are_kept() {
        let (a, b) = (pair(), pair());
        let doc = serde_json::json!({"public_keys": [
            {"key_identifier": "a", "key": pem(&a), "is_current": true},
            {"key_identifier": "b", "key": pem(&b), "is_current": false},
            {"key_identifier": "c", "key": "not a key", "is_current": true},
        ]});
        let keys = current_keys(&doc).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["a"]);
        assert!(current_keys(&serde_json::json!({})).is_err());
    }

    #[test]
    fn reports_parse_strictly_enough() {
        let ok =
            parse_report(br#"[{"token":"t","type":"x","url":"u","source":"s","extra":1},{"token":"t2","type":"y"}]"#)
                .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!((ok[1].url.as_str(), ok[1].source.as_str()), ("", ""));
        assert_eq!(parse_report(b"[]").unwrap(), Vec::new());
        for bad in [&b"{}"[..], b"nope", br#"[1]"#, br#"[{"type":"x"}]"#, br#"[{"token":1,"type":"x"}]"#] {
            assert!(parse_report(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn hashes_and_clips() {
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abcd", 4), "abcd");
        assert_eq!(clip("ééééé", 3), "éé…");
    }
}
