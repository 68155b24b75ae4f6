//! Public keys fetched from another service and kept in memory, per
//! instance, by key id: the OpenID issuers' JWKS
//! ([`crate::identity::jwks`]) and GitHub's secret scanning keys
//! ([`crate::scanning`]). One set of rules for both:
//!
//! - A key id not in the cache fetches the source's keys again, at most once
//!   a minute per source: a flood of made-up key ids costs the source one
//!   request a minute, and a key the source publishes is accepted within a
//!   minute.
//! - Keys older than an hour are fetched again on their next use (a key the
//!   source withdrew stops verifying); if that fetch fails, the cached keys
//!   keep serving.
//! - A source that cannot be reached while nothing of it is cached is
//!   [`KeyLookup::Unavailable`] (the caller answers 503, not 401).
//! - Every fetch goes through [`crate::fetch`]: HTTPS only (loopback HTTP in
//!   `ibyok dev` and the tests), no redirects, a size and a time limit.

use crate::clock::Timestamp;
use crate::fetch::Policy;
use std::collections::HashMap;
use std::future::Future;

/// The least time between two fetches of one source's keys.
pub const REFETCH_SECONDS: i64 = 60;
/// Cached keys older than this are fetched again on their next use.
pub const MAX_AGE_SECONDS: i64 = 3_600;
/// Sources kept at most (a deployment names few).
const MAX_SOURCES: usize = 256;

#[derive(Debug, PartialEq, Eq)]
pub enum KeyLookup<K> {
    Found(K),
    /// The source publishes no such key (or not yet: see [`REFETCH_SECONDS`]).
    Unknown,
    /// No key of the source is known and it could not be reached.
    Unavailable(String),
}

struct SourceKeys<K> {
    keys: HashMap<String, K>,
    fetched_at: Option<Timestamp>,
    attempted_at: Option<Timestamp>,
}

impl<K> Default for SourceKeys<K> {
    fn default() -> Self {
        Self { keys: HashMap::new(), fetched_at: None, attempted_at: None }
    }
}

/// The keys of any number of sources (an issuer, a URL), by key id.
pub struct KeyCache<K> {
    policy: Policy,
    sources: tokio::sync::Mutex<HashMap<String, SourceKeys<K>>>,
}

impl<K: Clone> KeyCache<K> {
    pub fn new(policy: Policy) -> Self {
        Self { policy, sources: tokio::sync::Mutex::new(HashMap::new()) }
    }

    /// What every fetch of this cache is held to.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The key `kid` of `source` at `now`; `fetch` (awaited only when the
    /// rules above call for it) answers every key of the source. One lookup
    /// at a time: a fetch holds the others (no two fetches of one source at
    /// once).
    pub async fn key(
        &self,
        source: &str,
        kid: &str,
        now: Timestamp,
        fetch: impl Future<Output = Result<HashMap<String, K>, String>>,
    ) -> KeyLookup<K> {
        let mut sources = self.sources.lock().await;
        if !sources.contains_key(source) && sources.len() >= MAX_SOURCES {
            sources.clear();
        }
        let entry = sources.entry(source.to_owned()).or_default();
        let may_fetch = entry.attempted_at.is_none_or(|t| now >= t.plus_seconds(REFETCH_SECONDS));
        let stale = entry.fetched_at.is_none_or(|t| now >= t.plus_seconds(MAX_AGE_SECONDS));
        let known = entry.keys.contains_key(kid);
        if may_fetch && (stale || !known) {
            entry.attempted_at = Some(now);
            match fetch.await {
                Ok(keys) => {
                    entry.keys = keys;
                    entry.fetched_at = Some(now);
                }
                Err(why) if entry.keys.is_empty() => return KeyLookup::Unavailable(why),
                Err(why) => {
                    tracing::warn!(source, cause = %why, "could not refresh a source's keys; the cached ones serve")
                }
            }
        } else if entry.keys.is_empty() {
            return KeyLookup::Unavailable("the source could not be reached a moment ago".into());
        }
        match entry.keys.get(kid) {
            Some(k) => KeyLookup::Found(k.clone()),
            None => KeyLookup::Unknown,
        }
    }
}

/// A GET of `url` that must answer 200 with JSON.
pub async fn get_json(url: &str, policy: &Policy) -> Result<serde_json::Value, String> {
    let resp = crate::fetch::get(url, policy).await.map_err(|e| format!("{url}: {e}"))?;
    if resp.status != 200 {
        return Err(format!("{url}: status {}", resp.status));
    }
    serde_json::from_slice(&resp.body).map_err(|_| format!("{url}: not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn fetches_at_most_once_a_minute_and_refreshes_hourly() {
        let cache: KeyCache<u8> = KeyCache::new(Policy::DEPLOYED);
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(HashMap::from([("a".to_owned(), 1u8)]))
        };
        let t0 = Timestamp::from_millis(1_000_000_000_000);
        assert_eq!(cache.key("s", "a", t0, fetch()).await, KeyLookup::Found(1));
        assert_eq!(cache.key("s", "b", t0.plus_seconds(1), fetch()).await, KeyLookup::Unknown);
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "an unknown kid within the minute fetches nothing");
        assert_eq!(cache.key("s", "b", t0.plus_seconds(61), fetch()).await, KeyLookup::Unknown);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        assert_eq!(cache.key("s", "a", t0.plus_seconds(120), fetch()).await, KeyLookup::Found(1));
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "a known, fresh key fetches nothing");
        let failing = || async { Err::<HashMap<String, u8>, _>("down".to_owned()) };
        assert_eq!(cache.key("s", "a", t0.plus_seconds(3_700), failing()).await, KeyLookup::Found(1));
        assert!(matches!(cache.key("t", "a", t0, failing()).await, KeyLookup::Unavailable(_)));
    }
}
