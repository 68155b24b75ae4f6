//! The issuers' signing keys, per instance: found by OpenID discovery
//! (`{issuer}/.well-known/openid-configuration`, then its `jwks_uri`) and
//! kept in a [`KeyCache`] (its rules: a `kid` not in the cache fetches
//! again at most once a minute per issuer; keys older than an hour are
//! fetched again on their next use; an issuer that cannot be reached while
//! nothing of it is cached is [`KeyLookup::Unavailable`], and the exchange
//! answers 503, not 401).

use super::jwt::VerifyKey;
use crate::clock::Timestamp;
use crate::fetch::Policy;
use crate::keycache::{get_json, KeyCache};
use serde_json::Value;
use std::collections::HashMap;

pub use crate::keycache::{MAX_AGE_SECONDS, REFETCH_SECONDS};

/// A lookup of an issuer's key.
pub type KeyLookup = crate::keycache::KeyLookup<VerifyKey>;

pub struct Jwks(KeyCache<VerifyKey>);

impl Jwks {
    pub fn new(policy: Policy) -> Self {
        Self(KeyCache::new(policy))
    }

    /// The key `kid` of `issuer` at `now`.
    pub async fn key(&self, issuer: &str, kid: &str, now: Timestamp) -> KeyLookup {
        self.0.key(issuer, kid, now, fetch_keys(issuer, self.0.policy())).await
    }
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
