//! The issuers' signing keys, per instance: found by OpenID discovery
//! (`{issuer}/.well-known/openid-configuration`, then its `jwks_uri`) and
//! kept in memory.
//!
//! - A `kid` not in the cache fetches the keys again, at most once a minute
//!   per issuer: a flood of made-up `kid`s costs the issuer one request a
//!   minute, and a key the issuer publishes is accepted within a minute.
//! - Keys older than an hour are fetched again on their next use (a key the
//!   issuer withdrew stops verifying); if that fetch fails, the cached keys
//!   keep serving.
//! - An issuer that cannot be reached while nothing of it is cached is
//!   [`KeyLookup::Unavailable`] (the exchange answers 503, not 401).
//! - Every fetch goes through [`crate::fetch`]: HTTPS only (loopback HTTP in
//!   `ibyok dev`), no redirects, a size and a time limit.

use super::jwt::VerifyKey;
use crate::clock::Timestamp;
use crate::fetch::{self, Policy};
use serde_json::Value;
use std::collections::HashMap;

/// The least time between two fetches of one issuer's keys.
pub const REFETCH_SECONDS: i64 = 60;
/// Cached keys older than this are fetched again on their next use.
pub const MAX_AGE_SECONDS: i64 = 3_600;
/// Issuers kept at most (the identities of a deployment name few).
const MAX_ISSUERS: usize = 256;

#[derive(Debug, PartialEq, Eq)]
pub enum KeyLookup {
    Found(VerifyKey),
    /// The issuer publishes no such key (or not yet: see [`REFETCH_SECONDS`]).
    Unknown,
    /// No key of the issuer is known and it could not be reached.
    Unavailable(String),
}

#[derive(Default)]
struct IssuerKeys {
    keys: HashMap<String, VerifyKey>,
    fetched_at: Option<Timestamp>,
    attempted_at: Option<Timestamp>,
}

pub struct Jwks {
    policy: Policy,
    issuers: tokio::sync::Mutex<HashMap<String, IssuerKeys>>,
}

impl Jwks {
    pub fn new(policy: Policy) -> Self {
        Self { policy, issuers: tokio::sync::Mutex::new(HashMap::new()) }
    }

    /// The key `kid` of `issuer` at `now`. One lookup at a time: a fetch
    /// holds the others (no two fetches of one issuer at once).
    pub async fn key(&self, issuer: &str, kid: &str, now: Timestamp) -> KeyLookup {
        let mut issuers = self.issuers.lock().await;
        if !issuers.contains_key(issuer) && issuers.len() >= MAX_ISSUERS {
            issuers.clear();
        }
        let entry = issuers.entry(issuer.to_owned()).or_default();
        let may_fetch = entry.attempted_at.is_none_or(|t| now >= t.plus_seconds(REFETCH_SECONDS));
        let stale = entry.fetched_at.is_none_or(|t| now >= t.plus_seconds(MAX_AGE_SECONDS));
        let known = entry.keys.contains_key(kid);
        if may_fetch && (stale || !known) {
            entry.attempted_at = Some(now);
            match fetch_keys(issuer, &self.policy).await {
                Ok(keys) => {
                    entry.keys = keys;
                    entry.fetched_at = Some(now);
                }
                Err(why) if entry.keys.is_empty() => return KeyLookup::Unavailable(why),
                Err(why) => {
                    tracing::warn!(issuer, cause = %why, "could not refresh an issuer's keys; the cached ones serve")
                }
            }
        } else if entry.keys.is_empty() {
            return KeyLookup::Unavailable("the issuer could not be reached a moment ago".into());
        }
        match entry.keys.get(kid) {
            Some(k) => KeyLookup::Found(k.clone()),
            None => KeyLookup::Unknown,
        }
    }
}

async fn get_json(url: &str, policy: &Policy) -> Result<Value, String> {
    let resp = fetch::get(url, policy).await.map_err(|e| format!("{url}: {e}"))?;
    if resp.status != 200 {
        return Err(format!("{url}: status {}", resp.status));
    }
    serde_json::from_slice(&resp.body).map_err(|_| format!("{url}: not JSON"))
}

/// Discovery, then the JWKS: the signing keys we can verify, by `kid`.
async fn fetch_keys(issuer: &str, policy: &Policy) -> Result<HashMap<String, VerifyKey>, String> {
    let discovery = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let doc = get_json(&discovery, policy).await?;
    // OpenID Connect Discovery: the document's issuer is the issuer.
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(format!("{discovery}: names another issuer"));
    }
    let jwks_uri = doc.get("jwks_uri").and_then(Value::as_str).ok_or_else(|| format!("{discovery}: no jwks_uri"))?;
    let jwks = get_json(jwks_uri, policy).await?;
    let keys = jwks.get("keys").and_then(Value::as_array).ok_or_else(|| format!("{jwks_uri}: no keys"))?;
    Ok(keys.iter().filter_map(Value::as_object).filter_map(VerifyKey::from_jwk).collect())
}
