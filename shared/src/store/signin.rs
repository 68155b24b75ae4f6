//! Sign-in's passing state: each started sign-in (its `state`, PKCE
//! verifier, nonce and the browser it is bound to) and each one-time code
//! a finished sign-in hands the console. Both are small items that expire
//! within minutes and are taken at most once: the store keeps them under a
//! hash of the secret that names them (`state`, the code), never the
//! secret itself. Their contents are [`crate::signin`]'s.

use super::StoreError;
use crate::clock::Timestamp;
use crate::secret::Redacted;
use async_trait::async_trait;

#[async_trait]
pub trait SignInStore: Send + Sync {
    /// One round trip: keeps `data` under `key` until `expires_at`.
    /// `Conflict::Exists` if the key is taken (never, for a fresh random
    /// secret's hash).
    async fn put_pending(&self, key: &str, data: &Redacted<String>, expires_at: Timestamp) -> Result<(), StoreError>;

    /// One round trip (a conditional delete): takes the item under `key`,
    /// once. `None` if there is none, or it expired before `now` (taken
    /// all the same). Of concurrent takes, at most one gets it.
    async fn take_pending(&self, key: &str, now: Timestamp) -> Result<Option<Redacted<String>>, StoreError>;
}
