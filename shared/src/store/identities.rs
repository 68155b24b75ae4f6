//! The identities aggregate: workload identities ([`IdentityRecord`]) and
//! the exchanges through them. An exchanged token is an ordinary token,
//! the identity creator's child in the token tree, and also entered under
//! the identity, so that deleting the identity finds every token issued
//! through it.

use super::{AuditEvent, Page, Revocable, StoreError, TokenRecord};
use crate::clock::Timestamp;
use crate::identity::IdentityRecord;
use crate::ids::{IdentityId, TenantId};
use async_trait::async_trait;
use sha2::{Digest, Sha256};

/// A JWT's `jti`, claimed once until the JWT expires: the claim's key is a
/// digest of the issuer and the `jti` (neither is stored as it is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JtiClaim {
    pub key: String,
    pub until: Timestamp,
}

impl JtiClaim {
    pub fn new(issuer: &str, jti: &str, until: Timestamp) -> Self {
        let digest =
            Sha256::new().chain_update(issuer.as_bytes()).chain_update([0]).chain_update(jti.as_bytes()).finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Self { key: format!("jti#{hex}"), until }
    }
}

#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// One round trip (one transaction): stores `identity` and its
    /// `identity.create` event.
    ///
    /// - `Conflict::Exists` if the id is taken (never overwrites; a retry of
    ///   this very write, found stored alike, is `Ok`).
    /// - `Conflict::IssuerNotLive` unless its creator (`created_by`) is live
    ///   at `created_at`.
    async fn create_identity(&self, identity: &IdentityRecord, audit: &AuditEvent) -> Result<(), StoreError>;

    /// One round trip, consistent: the identity, deleted ones included
    /// (with `deleted_at`), or `None`. Any tenant's: callers check.
    async fn get_identity(&self, id: &IdentityId) -> Result<Option<IdentityRecord>, StoreError>;

    /// Two round trips (index query, consistent batch read): the tenant's
    /// identities, oldest first, deleted ones included (callers filter).
    /// `BadCursor` for a cursor this store did not give this tenant.
    async fn list_identities(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<IdentityRecord>, StoreError>;

    /// Marks the identity deleted at `at` with its `identity.delete` event
    /// (one transaction), then reads the tokens exchanged through it (a
    /// second round trip, consistent), which it answers for the caller to
    /// revoke with their subtrees. An exchange after the mark fails, so no
    /// token escapes the answer.
    ///
    /// - `NotFound` if the identity is missing or another tenant's.
    /// - Idempotent: an identity deleted already keeps its first
    ///   `deleted_at`, gets no second event, and answers its tokens again
    ///   (so that a retry finishes a cascade a failure cut short).
    async fn delete_identity(
        &self,
        tenant: &TenantId,
        id: &IdentityId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<Vec<Revocable>, StoreError>;

    /// One round trip (one transaction), all or nothing: creates `token`
    /// (issued by the identity's creator) as `TokenStore::create_token`
    /// does, enters it under the identity, claims `jti` until its expiry,
    /// and writes `audit` (`auth.exchange`).
    ///
    /// - `Conflict::IssuerNotLive` if the creator is no longer live, or the
    ///   identity is missing or deleted.
    /// - `Conflict::Replayed` if `jti` was claimed before and has not
    ///   expired.
    /// - `Conflict::Exists` if the token id is taken.
    async fn exchange(
        &self,
        identity: &IdentityId,
        token: &TokenRecord,
        jti: Option<&JtiClaim>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
}
