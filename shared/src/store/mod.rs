//! The domain records and the storage port, one module per aggregate.
//!
//! | module | records | port |
//! |---|---|---|
//! | [`reads`] | [`Fetch`], [`Fetched`], [`ExpectedRead`] | [`ReadStore`]: one fetch, reads recorded and taken back |
//! | [`tenants`] | [`TenantRecord`] | [`TenantStore`] |
//! | [`keys`] | [`KeyRecord`], [`KeyVersion`], [`KeyChange`] and the version rules | [`KeyStore`] |
//! | [`tokens`] | [`TokenRecord`], [`Revocable`], [`TokenFilter`] | [`TokenStore`] |
//! | [`identities`] | [`crate::identity::IdentityRecord`], [`identities::JtiClaim`] | [`IdentityStore`] |
//! | [`members`] | [`crate::member::MemberRecord`] | [`MemberStore`] |
//! | [`audit`] | [`AuditEvent`], [`Actor`] | [`AuditStore`] |
//! | [`digests`] | [`AuditDigest`] ([`crate::digest`]) | [`DigestStore`] |
//! | [`usage`] | ([`crate::usage`]) | [`UsageStore`] |
//! | [`limits`] | [`RateCount`] | [`LimitStore`] |
//! | [`notices`] | [`ExpiryNotice`] | [`NoticeStore`] |
//!
//! [`Store`] is the sum of the traits: an adapter implements each, and a
//! caller that needs only some names only those. Adapters:
//! [`dynamo::DynamoStore`] (production and the integration tests, through
//! `aws-sdk-dynamodb`) and [`memory::MemoryStore`] (the local development
//! server and fast unit tests), each with one file per aggregate.
//! [`schema`] defines the DynamoDB tables once; the template is checked
//! against it. The contract suite ([`contract`], one file per aggregate)
//! holds both adapters to the behaviour documented on the traits.
//!
//! The port speaks in whole operations, each costing the backend round trips
//! written on it, so that the handlers' costs can be read off their calls.

#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod dynamo;
pub mod identities;
pub mod members;
pub mod memory;
pub mod schema;
pub mod signin;

pub mod audit;
pub mod digests;
pub mod keys;
pub mod limits;
pub mod notices;
pub mod reads;
pub mod tenants;
pub mod tokens;
pub mod usage;

pub use audit::*;
pub use digests::*;
pub use identities::IdentityStore;
pub use keys::*;
pub use limits::*;
pub use members::MemberStore;
pub use notices::*;
pub use reads::*;
pub use signin::SignInStore;
pub use tenants::*;
pub use tokens::*;
pub use usage::*;

use crate::fault::{Fault, FaultKind};
use serde::Serialize;

#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; `None` on the last page.
    pub next: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeReport {
    /// Index entries read to find what to delete.
    pub items_read: usize,
    pub deleted: usize,
}

impl PurgeReport {
    /// The reports of several shards, added up.
    pub fn sum(reports: impl IntoIterator<Item = PurgeReport>) -> Self {
        reports.into_iter().fold(Self::default(), |a, r| Self {
            items_read: a.items_read + r.items_read,
            deleted: a.deleted + r.deleted,
        })
    }
}

/// Which state a conditional write found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The id is taken (and not by a retry of this very write).
    #[error("the item exists")]
    Exists,
    /// The issuer of a new token is revoked, expired or gone.
    #[error("the issuer is no longer live")]
    IssuerNotLive,
    /// A key's versions changed since they were read.
    #[error("the key's versions changed")]
    Changed,
    /// A JWT's `jti` was exchanged before.
    #[error("the credential was exchanged before")]
    Replayed,
    /// The tenant has a member under this invitation already.
    #[error("already a member")]
    AlreadyMember,
    /// The change would leave the tenant without an owner.
    #[error("the tenant's last owner")]
    LastOwner,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The item is missing, or belongs to another tenant.
    #[error("not found")]
    NotFound,
    /// A conditional write found the state it guards against.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// A cursor that this store did not hand to this tenant.
    #[error("bad cursor")]
    BadCursor,
    /// Throttled or unreachable after the SDK's retries.
    #[error("store unavailable")]
    Unavailable(#[source] Fault),
    /// A stored item that does not decode, or an unexpected service error.
    #[error("store failed")]
    Internal(#[source] Fault),
}

impl StoreError {
    /// A local or data failure, with a cause that names no secret.
    pub fn internal(kind: FaultKind, what: impl Into<String>) -> Self {
        StoreError::Internal(Fault::new(kind, what))
    }
}

/// The whole port: every aggregate's trait. An adapter implements each; a
/// caller that needs only some names those instead.
pub trait Store:
    ReadStore
    + TenantStore
    + KeyStore
    + TokenStore
    + AuditStore
    + UsageStore
    + LimitStore
    + NoticeStore
    + IdentityStore
    + MemberStore
    + SignInStore
    + DigestStore
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: ReadStore
        + TenantStore
        + KeyStore
        + TokenStore
        + AuditStore
        + UsageStore
        + LimitStore
        + NoticeStore
        + IdentityStore
        + MemberStore
        + SignInStore
        + DigestStore
        + Send
        + Sync
        + ?Sized
{
}
