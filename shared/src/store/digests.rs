//! The audit log's signed digests ([`crate::digest`]): one chain per audit
//! shard, written by the scheduled run, listed by `GET /audit/digests`.

use super::{AuditEvent, Page, StoreError};
use crate::clock::Timestamp;
use crate::ids::TenantId;
use async_trait::async_trait;

/// A stored digest: its signed statement (the exact bytes signed, RFC 8785
/// JSON, [`crate::digest::Statement`]), the signature, and the index the
/// statement's root authenticates ([`crate::digest::encode_index`]). The
/// key fields repeat the statement's, for the store's keys; a verifier
/// reads the statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditDigest {
    pub tenant_id: TenantId,
    pub shard: u32,
    pub seq: u64,
    pub through: Timestamp,
    pub statement: String,
    /// ECDSA P-256 / SHA-256, ASN.1 DER.
    pub signature: Vec<u8>,
    pub index: Vec<u8>,
    /// When the store may drop it (its TTL).
    pub expires_at: Option<Timestamp>,
}

/// At most this many digests a page (an index holds up to ~250 KB).
pub const DIGESTS_PAGE_MAX: usize = 10;

/// The digests' storage, and the reads the digest run makes of the audit
/// log.
#[async_trait]
pub trait DigestStore: Send + Sync {
    /// Every tenant (one scan of the tenants' own items; operator and
    /// scheduled paths only).
    async fn digest_tenants(&self) -> Result<Vec<TenantId>, StoreError>;

    /// The shard's newest digest (consistent; one round trip), `None`
    /// before its first.
    async fn last_digest(&self, tenant: &TenantId, shard: u32) -> Result<Option<AuditDigest>, StoreError>;

    /// The shard's events with `after < at <= through` (epoch milliseconds,
    /// by the event's key), oldest first (time, then event id), at most
    /// `limit`; consistent, every page.
    async fn shard_events(
        &self,
        tenant: &TenantId,
        shard: u32,
        after: i64,
        through: i64,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Stores a digest once: `Conflict::Exists` if the shard already holds
    /// one with its seq (another run got there first; nothing written).
    async fn put_digest(&self, digest: &AuditDigest) -> Result<(), StoreError>;

    /// The tenant's digests of every shard, newest `through` first (ties by
    /// shard, then seq), those with `through` in `[from, to]`; at most
    /// `limit` (clamped to 1..=[`DIGESTS_PAGE_MAX`]) a page.
    async fn list_digests(
        &self,
        tenant: &TenantId,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<AuditDigest>, StoreError>;
}
