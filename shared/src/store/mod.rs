//! The domain records and the storage port.
//!
//! Adapters: [`dynamo::DynamoStore`] (production and the integration tests,
//! through `aws-sdk-dynamodb`) and [`memory::MemoryStore`] (the local
//! development server and fast unit tests). [`schema`] defines the DynamoDB
//! tables once; the template is checked against it.
//!
//! The port speaks in whole operations, each costing the backend round trips
//! written on it, so that the handlers' costs can be read off their calls.

#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod dynamo;
pub mod memory;
pub mod schema;

use crate::clock::Timestamp;
use crate::envelope::Envelope;
use crate::fault::{Fault, FaultKind};
use crate::ids::{KeyId, TenantId, TokenId};
use crate::mode::{Environment, Mode, ModeOverrides, ModeRequirement, Source, TenantModes};
use crate::token::Grant;
use crate::usage::{DailyCount, Day, UsageBatch};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub token_id: TokenId,
    pub tenant_id: TenantId,
    /// The stored verifier (a hash of the token), never the token.
    pub verifier: Vec<u8>,
    pub name: String,
    pub grant: Grant,
    pub created_at: Timestamp,
    pub issued_by: Option<TokenId>,
    /// Every token above this one, root first.
    pub ancestors: Vec<TokenId>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub uses: u64,
}

impl TokenRecord {
    /// Whether `self` may see or revoke `other`: a root reaches its whole
    /// tenant; any other token reaches itself and its descendants.
    pub fn reaches(&self, other: &TokenRecord) -> bool {
        self.tenant_id == other.tenant_id
            && (self.issued_by.is_none() || self.token_id == other.token_id || other.ancestors.contains(&self.token_id))
    }

    /// The live-token rule: not revoked and not expired. Authentication, the
    /// planned read and both stores' conditional writes apply this rule (the
    /// DynamoDB adapter as a condition expression, `LIVE_TOKEN`, which the
    /// store contract suite holds to it).
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.grant.unexpired_at(now)
    }

    /// Live, revoked (whatever its expiry) or expired.
    pub fn state(&self, now: Timestamp) -> TokenState {
        match (self.revoked_at, self.grant.unexpired_at(now)) {
            (Some(_), _) => TokenState::Revoked,
            (None, false) => TokenState::Expired,
            (None, true) => TokenState::Live,
        }
    }

    /// When cleanup may delete this token: at expiry, or a grace period after
    /// its (first) revocation, whichever comes first; in whole seconds,
    /// rounded up. Revoking again never moves it.
    pub fn purge_second(&self, revoked_grace_seconds: i64) -> i64 {
        let at = match self.revoked_at {
            Some(r) => r.plus_seconds(revoked_grace_seconds).min(self.grant.expires_at),
            None => self.grant.expires_at,
        };
        at.ceil_seconds()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenState {
    Live,
    Revoked,
    Expired,
}

impl TokenState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(TokenState::Live),
            "revoked" => Some(TokenState::Revoked),
            "expired" => Some(TokenState::Expired),
            _ => None,
        }
    }
}

/// The filters of `GET /tokens`, ANDed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenFilter {
    /// Live tokens expiring within this many seconds.
    pub expiring_within: Option<i64>,
    /// Live tokens not used for this many seconds (counting from creation
    /// for a token never used).
    pub unused_for: Option<i64>,
    pub state: Option<TokenState>,
}

impl TokenFilter {
    pub fn matches(&self, t: &TokenRecord, now: Timestamp) -> bool {
        let live = t.is_live(now);
        self.expiring_within.is_none_or(|s| live && t.grant.expires_at <= now.plus_seconds(s))
            && self.unused_for.is_none_or(|s| live && t.last_used_at.unwrap_or(t.created_at) <= now.plus_seconds(-s))
            && self.state.is_none_or(|s| t.state(now) == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: KeyId,
    pub tenant_id: TenantId,
    pub name: String,
    pub llm_type: String,
    pub preview: String,
    pub mode_overrides: ModeOverrides,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub retrievals: u64,
    pub envelope: Envelope,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRecord {
    pub tenant_id: TenantId,
    pub name: String,
    pub modes: TenantModes,
    pub created_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    #[serde(rename = "key.read")]
    KeyRead,
    #[serde(rename = "key.create")]
    KeyCreate,
    #[serde(rename = "key.update")]
    KeyUpdate,
    #[serde(rename = "key.rotate")]
    KeyRotate,
    #[serde(rename = "key.delete")]
    KeyDelete,
    #[serde(rename = "token.create")]
    TokenCreate,
    #[serde(rename = "token.revoke")]
    TokenRevoke,
    #[serde(rename = "settings.update")]
    SettingsUpdate,
    #[serde(rename = "auth.denied")]
    AuthDenied,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Denied,
}

/// One audit event, as the contract lists its fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    #[serde(skip)]
    pub tenant_id: Option<TenantId>,
    pub at: Timestamp,
    pub request_id: String,
    pub action: AuditAction,
    pub token_id: Option<TokenId>,
    pub key_id: Option<KeyId>,
    pub environment: Option<Environment>,
    pub effective_mode: Option<Mode>,
    pub outcome: Outcome,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Orders events of one millisecond and names the event to the store
    /// ([`crate::ids::new_event_id`]); not shown.
    #[serde(skip)]
    pub event_id: String,
    /// When the store may drop the event (the retention period).
    #[serde(skip)]
    pub retain_until: Option<Timestamp>,
}

/// What one request needs from the store, fetched in one round trip with
/// consistent reads.
#[derive(Clone, Debug, Default)]
pub struct Fetch {
    pub tokens: Vec<TokenId>,
    pub keys: Vec<KeyId>,
    pub tenant: Option<TenantId>,
}

#[derive(Clone, Debug, Default)]
pub struct Fetched {
    pub tokens: HashMap<TokenId, TokenRecord>,
    pub keys: HashMap<KeyId, KeyRecord>,
    pub tenant: Option<TenantRecord>,
}

/// A value read predicted from an earlier read of the same token and key:
/// what the store must still hold for [`Store::record_expected_read`] to
/// record the read without fetching anything first. Every field is checked
/// by the store at the moment it writes, so a stale prediction costs a round
/// trip, never a wrong answer.
#[derive(Clone, Debug)]
pub struct ExpectedRead {
    pub tenant_id: TenantId,
    pub token_id: TokenId,
    /// The token's stored verifier (a hash of it, which the presented token
    /// matched); it must still be stored, and the token neither revoked nor
    /// expired.
    pub verifier: Vec<u8>,
    pub key_id: KeyId,
    pub key_name: String,
    pub llm_type: String,
    pub environment: Environment,
    /// The mode served and the rule that decided it: a key override must
    /// still be `mode`; a tenant setting must still be `mode` with no key
    /// override; a guardrail needs nothing stored.
    pub mode: Mode,
    pub source: Source,
    /// Live reads: the envelope being decrypted must still be the stored one.
    pub envelope: Option<Envelope>,
}

impl ExpectedRead {
    /// What must still be stored for the planned mode to hold.
    pub fn mode_requirement(&self) -> ModeRequirement {
        ModeRequirement::of(self.environment, self.mode, self.source)
    }

    /// Whether the stored token, key and tenant settings (`None`: not
    /// stored) still bear the plan out at `at`: the one check both stores
    /// make before a planned read counts.
    pub fn holds(
        &self,
        token: Option<&TokenRecord>,
        key: Option<&KeyRecord>,
        modes: &TenantModes,
        at: Timestamp,
    ) -> bool {
        let token_holds =
            token.is_some_and(|t| t.verifier == self.verifier && t.tenant_id == self.tenant_id && t.is_live(at));
        let key_holds = key.is_some_and(|k| {
            k.tenant_id == self.tenant_id
                && k.name == self.key_name
                && k.llm_type == self.llm_type
                && self.envelope.as_ref().is_none_or(|e| *e == k.envelope)
                && self.mode_requirement().holds(&k.mode_overrides, modes)
        });
        token_holds && key_holds
    }
}

/// A token to revoke: its id and, when known, its expiry (from its record,
/// or from its entry under its issuer), which spares the store a read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Revocable {
    pub token_id: TokenId,
    pub expires_at: Option<Timestamp>,
}

/// A change to an existing key.
#[derive(Clone, Debug)]
pub enum KeyChange {
    Value { envelope: Envelope, preview: String },
    Meta { name: String, mode_overrides: ModeOverrides },
}

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

/// Which state a conditional write found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// The id is taken (and not by a retry of this very write).
    #[error("the item exists")]
    Exists,
    /// The issuer of a new token is revoked, expired or gone.
    #[error("the issuer is no longer live")]
    IssuerNotLive,
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

#[async_trait]
pub trait Store: Send + Sync {
    /// One round trip (`BatchGetItem`, consistent reads).
    async fn fetch(&self, want: &Fetch) -> Result<Fetched, StoreError>;

    /// Creates a tenant with its first (root) token. Operator path.
    async fn create_tenant(&self, tenant: &TenantRecord, root: &TokenRecord) -> Result<(), StoreError>;

    /// One round trip (one transaction: the update and its audit event, or
    /// neither): sets the given environments' defaults and answers the whole.
    /// With no change, writes nothing (no event) and answers the stored whole.
    async fn update_modes(
        &self,
        tenant: &TenantId,
        changes: &[(Environment, Mode)],
        audit: &AuditEvent,
    ) -> Result<TenantModes, StoreError>;

    /// One round trip; `Conflict::Exists` if the id exists (never overwrites;
    /// a retry of this very write, recognised by its ciphertext, is `Ok`).
    async fn create_key(&self, key: &KeyRecord, audit: &AuditEvent) -> Result<(), StoreError>;

    /// One round trip; `NotFound` unless the key exists in `tenant`.
    async fn update_key(
        &self,
        tenant: &TenantId,
        key: &KeyId,
        change: &KeyChange,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// One round trip; `NotFound` if the key is another tenant's. A key
    /// already gone is `Ok` and writes no event (its deletion wrote one).
    async fn delete_key(&self, tenant: &TenantId, key: &KeyId, audit: &AuditEvent) -> Result<(), StoreError>;

    /// One round trip: the read's audit event, the only write of a read.
    /// The counters follow from it ([`crate::usage`]): at once in the memory
    /// store, from the audit stream in DynamoDB. Counts of a key or token
    /// deleted meanwhile are dropped, never stored on a stub.
    async fn record_read(
        &self,
        key: &KeyId,
        token: &TokenId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// One round trip (a consistent read of the token, the key and, where
    /// the plan rests on it, the tenant's settings, at the same time as the
    /// event's write): records a read as `record_read` does if, and only if,
    /// everything in `expect` holds ([`ExpectedRead::holds`]). `Ok(false)`:
    /// something changed, and nothing of the read stays (an event written
    /// meanwhile is deleted before this answers); the caller reads afresh.
    async fn record_expected_read(
        &self,
        expect: &ExpectedRead,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Takes back a read that failed after `record_read` or
    /// `record_expected_read` answered: its audit event, which must not
    /// describe a read that was not served, and so its counts (never below
    /// zero).
    async fn unrecord_read(&self, key: &KeyId, token: &TokenId, audit: &AuditEvent) -> Result<(), StoreError>;

    /// Adds one delivery of the audit stream to the counters. Exact: a
    /// batch delivered again adds only what did not land the first time.
    /// The memory store counts as it records and is given no batches by the
    /// development server; it applies them the same way for the contract.
    async fn apply_usage(&self, batch: &UsageBatch, now: Timestamp) -> Result<(), StoreError>;

    /// The tenant's reads per key and per token on each day of `from..=to`
    /// that has any, deleted keys and purged tokens included.
    async fn daily_usage(&self, tenant: &TenantId, from: Day, to: Day) -> Result<Vec<DailyCount>, StoreError>;

    /// One round trip. `Conflict::Exists` if the id is taken (a retry of this
    /// very write, recognised by its verifier, is `Ok`). With an issuer,
    /// `Conflict::IssuerNotLive` unless the issuer is live at the token's
    /// creation (the live-token rule), and records the child on the issuer so
    /// that a later revocation finds it.
    async fn create_token(&self, token: &TokenRecord, audit: &AuditEvent) -> Result<(), StoreError>;

    /// One round trip (a second, to read its children, only if it issued
    /// any; a third when its expiry is not given and comes before the grace
    /// ends): marks the token revoked, keeping an earlier `revokedAt`, sets its purge time
    /// by [`TokenRecord::purge_second`] (a second revocation never moves it),
    /// and answers the ids of the tokens it issued.
    async fn revoke_token(
        &self,
        tenant: &TenantId,
        token: &Revocable,
        at: Timestamp,
        revoked_grace_seconds: i64,
    ) -> Result<Vec<Revocable>, StoreError>;

    /// Two round trips (index query, then consistent batch read), oldest first.
    async fn list_keys(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<KeyRecord>, StoreError>;

    /// Two round trips, as [`Store::list_keys`].
    async fn list_tokens(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<TokenRecord>, StoreError>;

    /// One round trip.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// One round trip, newest first.
    async fn list_audit(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>, StoreError>;

    /// Deletes tokens whose purge second is at or before `now`'s, reading
    /// only those.
    async fn purge_tokens(&self, now: Timestamp) -> Result<PurgeReport, StoreError>;
}
