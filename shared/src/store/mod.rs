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
pub mod identities;
pub mod memory;
pub mod schema;

use crate::clock::{Month, Timestamp};
use crate::envelope::Envelope;
use crate::fault::{Fault, FaultKind};
use crate::ids::{IdentityId, KeyId, TenantId, TokenId};
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
    /// The workload identity this token was exchanged through, if any.
    pub identity_id: Option<IdentityId>,
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

/// Expiry notices go out this long before a token expires.
pub const EXPIRY_NOTICE_SECONDS: i64 = 7 * 86_400;

impl TokenRecord {
    /// When this token's expiry notice is due (epoch seconds):
    /// [`EXPIRY_NOTICE_SECONDS`] before its expiry, for a token issued at
    /// least that long before it expires; `None` for a shorter-lived token
    /// (its issuer chose a short life; nobody needs telling).
    pub fn notice_second(&self) -> Option<i64> {
        let at = self.grant.expires_at.plus_seconds(-EXPIRY_NOTICE_SECONDS);
        (at >= self.created_at).then(|| at.seconds())
    }
}

/// A token whose expiry is near, for its notice: never the token itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryNotice {
    pub token_id: TokenId,
    pub name: String,
    pub tenant_id: TenantId,
    pub expires_at: Timestamp,
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
    pub mode_overrides: ModeOverrides,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub retrievals: u64,
    /// The version served by default.
    pub current: KeyVersion,
    /// The version that was current before, with `retires_at`: readable
    /// until then, retired after, destroyed by the next cleanup.
    pub previous: Option<KeyVersion>,
    /// A version stored beside the current one, read only when asked for.
    pub pending: Option<KeyVersion>,
    /// The highest version number ever given: numbers are never reused.
    pub last_version: u64,
}

/// One stored version of a key's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVersion {
    /// From 1 (the value given at creation).
    pub number: u64,
    pub created_at: Timestamp,
    /// A previous version's end: readable before, retired from then on.
    pub retires_at: Option<Timestamp>,
    pub preview: String,
    pub envelope: Envelope,
}

impl KeyVersion {
    /// A version's first stage: created now.
    pub fn new(number: u64, created_at: Timestamp, preview: String, envelope: Envelope) -> Self {
        Self { number, created_at, retires_at: None, preview, envelope }
    }
}

/// A version's stage (`GET /keys/{keyId}/versions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Current,
    Previous,
    Pending,
    /// A previous version past its window, until cleanup destroys it.
    Retired,
}

/// Which version a read asks for (`?version=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum VersionSelector {
    #[default]
    Current,
    Previous,
    Pending,
    Number(u64),
}

impl VersionSelector {
    /// `current`, `previous`, `pending` or a version number (digits).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "current" => Some(Self::Current),
            "previous" => Some(Self::Previous),
            "pending" => Some(Self::Pending),
            n if !n.is_empty() && n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse().ok().map(Self::Number)
            }
            _ => None,
        }
    }
}

/// How long the version that stops being current stays readable, in
/// seconds (`previousValidFor`).
pub const MAX_PREVIOUS_VALID_FOR: i64 = 2_592_000;

impl KeyRecord {
    /// The stored versions with their stage at `now`, newest first.
    pub fn versions(&self, now: Timestamp) -> Vec<(&KeyVersion, Stage)> {
        let mut out = vec![(&self.current, Stage::Current)];
        out.extend(self.pending.iter().map(|v| (v, Stage::Pending)));
        out.extend(
            self.previous.iter().map(|v| (v, if previous_readable(v, now) { Stage::Previous } else { Stage::Retired })),
        );
        out.sort_by_key(|(v, _)| std::cmp::Reverse(v.number));
        out
    }

    /// The version a read asks for, if it is readable at `now` (a retired
    /// version, or one that does not exist, is `None`).
    pub fn select(&self, which: VersionSelector, now: Timestamp) -> Option<(&KeyVersion, Stage)> {
        let readable = self.versions(now).into_iter().filter(|(_, stage)| *stage != Stage::Retired);
        readable.into_iter().find(|(v, stage)| match which {
            VersionSelector::Current => *stage == Stage::Current,
            VersionSelector::Previous => *stage == Stage::Previous,
            VersionSelector::Pending => *stage == Stage::Pending,
            VersionSelector::Number(n) => v.number == n,
        })
    }

    /// What the store must hold for `version` (planned at `stage`) to be
    /// served at `at`, with `envelope` when live: the same number in the
    /// same place, readable, and the same envelope. The memory store's form
    /// of the DynamoDB adapter's condition.
    pub fn holds_version(&self, version: &PlannedVersion, envelope: Option<&Envelope>, at: Timestamp) -> bool {
        let slot = match version.stage {
            Stage::Current => Some(&self.current),
            Stage::Previous => self.previous.as_ref().filter(|v| previous_readable(v, at)),
            Stage::Pending => self.pending.as_ref(),
            Stage::Retired => None,
        };
        slot.is_some_and(|v| v.number == version.number && envelope.is_none_or(|e| *e == v.envelope))
    }

    /// The change that makes `new` the current version: the current one
    /// becomes previous for `previous_valid_for` seconds (none at 0: it is
    /// retired, and destroyed, at once); an earlier previous is destroyed.
    pub fn rotation(&self, new: KeyVersion, previous_valid_for: i64, now: Timestamp) -> KeyChange {
        KeyChange::Versions {
            expect: self.stamp(),
            current: Some(new.clone()),
            previous: self.demoted(previous_valid_for, now),
            pending: Slot::Keep,
            last_version: new.number.max(self.last_version),
        }
    }

    /// The change that stores `new` as the pending version (a pending one
    /// before it is destroyed).
    pub fn staging(&self, new: KeyVersion) -> KeyChange {
        KeyChange::Versions {
            expect: self.stamp(),
            current: None,
            previous: Slot::Keep,
            last_version: new.number.max(self.last_version),
            pending: Slot::Set(new),
        }
    }

    /// The change that makes the pending version current, as a rotation
    /// does; `None` without a pending version.
    pub fn promotion(&self, previous_valid_for: i64, now: Timestamp) -> Option<KeyChange> {
        let pending = self.pending.clone()?;
        Some(KeyChange::Versions {
            expect: self.stamp(),
            current: Some(KeyVersion { retires_at: None, ..pending }),
            previous: self.demoted(previous_valid_for, now),
            pending: Slot::Remove,
            last_version: self.last_version,
        })
    }

    /// The next version number.
    pub fn next_version(&self) -> u64 {
        self.last_version.max(self.current.number).saturating_add(1)
    }

    fn demoted(&self, previous_valid_for: i64, now: Timestamp) -> Slot {
        match previous_valid_for {
            0 => Slot::Remove,
            s => Slot::Set(KeyVersion { retires_at: Some(now.plus_seconds(s)), ..self.current.clone() }),
        }
    }

    fn stamp(&self) -> VersionStamp {
        VersionStamp {
            current: self.current.number,
            last: self.last_version,
            pending: self.pending.as_ref().map(|v| v.number),
        }
    }

    /// Applies a version change (the memory store's write, and what a
    /// handler answers after the store took it).
    pub fn apply_versions(&mut self, change: &KeyChange) {
        if let KeyChange::Versions { current, previous, pending, last_version, .. } = change {
            if let Some(c) = current {
                self.current = c.clone();
            }
            previous.apply(&mut self.previous);
            pending.apply(&mut self.pending);
            self.last_version = *last_version;
        }
    }

    /// Whether cleanup destroys the previous version at `now`: its window
    /// closed at or before `now`'s second (whole seconds, rounded up, in
    /// both stores: never before its time).
    pub fn previous_due(&self, now: Timestamp) -> bool {
        self.previous.as_ref().and_then(|v| v.retires_at).is_some_and(|r| r.ceil_seconds() <= now.seconds())
    }

    /// Whether `change` has landed on this record: a retry of a change
    /// whose first answer was lost finds its own versions (their envelopes
    /// are unique).
    pub fn shows(&self, change: &KeyChange) -> bool {
        let KeyChange::Versions { current, pending, last_version, .. } = change else { return false };
        self.last_version == *last_version
            && current.as_ref().is_none_or(|c| c.number == self.current.number && c.envelope == self.current.envelope)
            && match pending {
                Slot::Set(p) => self.pending.as_ref().is_some_and(|kp| kp.envelope == p.envelope),
                Slot::Remove => self.pending.is_none(),
                Slot::Keep => true,
            }
    }
}

fn previous_readable(v: &KeyVersion, now: Timestamp) -> bool {
    v.retires_at.is_some_and(|r| now < r)
}

/// A planned read's version: its number and where it stood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedVersion {
    pub number: u64,
    /// Current, previous or pending.
    pub stage: Stage,
}

/// What a version change expects to find (a concurrent change fails it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionStamp {
    pub current: u64,
    pub last: u64,
    pub pending: Option<u64>,
}

/// What a version change does to the previous or pending version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    Keep,
    /// Destroyed: its ciphertext and wrapped key go.
    Remove,
    Set(KeyVersion),
}

impl Slot {
    fn apply(&self, slot: &mut Option<KeyVersion>) {
        match self {
            Slot::Keep => {}
            Slot::Remove => *slot = None,
            Slot::Set(v) => *slot = Some(v.clone()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRecord {
    pub tenant_id: TenantId,
    pub name: String,
    pub modes: TenantModes,
    pub created_at: Timestamp,
    /// The operator's monthly quota of value reads; `None` when unlimited.
    pub reads_per_month: Option<u64>,
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
    #[serde(rename = "key.promote")]
    KeyPromote,
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
    /// The first request of a token refused by its rate limit in a minute.
    #[serde(rename = "auth.limited")]
    AuthLimited,
    #[serde(rename = "identity.create")]
    IdentityCreate,
    #[serde(rename = "identity.delete")]
    IdentityDelete,
    /// A workload's credential exchanged for a token (`detail`: the JWT's
    /// subject or the role ARN).
    #[serde(rename = "auth.exchange")]
    AuthExchange,
}

/// Who did what an audit event records (`actor`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    pub kind: ActorKind,
    /// The token that made the request (for an exchange, the token made).
    pub token_id: Option<TokenId>,
    pub member_id: Option<String>,
    pub identity_id: Option<IdentityId>,
    /// The token's name (for an exchanged token: the identity's name and
    /// the subject or role session).
    pub name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    Token,
    Session,
    Identity,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Token => "token",
            ActorKind::Session => "session",
            ActorKind::Identity => "identity",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "token" => Some(ActorKind::Token),
            "session" => Some(ActorKind::Session),
            "identity" => Some(ActorKind::Identity),
            _ => None,
        }
    }
}

impl Actor {
    /// The actor of a request that `token` authenticated.
    pub fn of(token: &TokenRecord) -> Self {
        Actor {
            kind: if token.identity_id.is_some() { ActorKind::Identity } else { ActorKind::Token },
            token_id: Some(token.token_id.clone()),
            member_id: None,
            identity_id: token.identity_id.clone(),
            name: Some(token.name.clone()),
        }
    }
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
    /// The version rotated to, promoted, or read.
    pub version: Option<u64>,
    pub environment: Option<Environment>,
    pub effective_mode: Option<Mode>,
    pub outcome: Outcome,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Who made the request; `null` on events recorded before actors were.
    #[serde(default)]
    pub actor: Option<Actor>,
    /// The identity a workload exchanged through or was refused by.
    #[serde(default)]
    pub identity_id: Option<IdentityId>,
    /// `auth.exchange`: the subject or role ARN; an exchange's
    /// `auth.denied`: the check that failed.
    #[serde(default)]
    pub detail: Option<String>,
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
    /// Whether the records' usage counters (`retrievals`, `uses`,
    /// `lastUsedAt`) are wanted, to be shown. Without it the store may answer
    /// from copies that hold everything else exactly (the DynamoDB adapter's
    /// replicas, which spread one key's or token's reads) and whose counters
    /// are not kept.
    pub usage: bool,
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
    /// The version served: still stored where it was, and readable.
    pub version: PlannedVersion,
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
                && k.holds_version(&self.version, self.envelope.as_ref(), at)
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
// One per request, never held in bulk: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum KeyChange {
    /// A new current or pending version, or a promotion (built by
    /// [`KeyRecord::rotation`], [`KeyRecord::staging`],
    /// [`KeyRecord::promotion`]). Written only if the key's versions are
    /// still `expect`, else `Conflict::Changed`; a retry of this very change
    /// that landed is `Ok`.
    Versions {
        expect: VersionStamp,
        /// A new current version (`None`: the current one stays).
        current: Option<KeyVersion>,
        previous: Slot,
        pending: Slot,
        last_version: u64,
    },
    Meta {
        name: String,
        mode_overrides: ModeOverrides,
    },
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

impl PurgeReport {
    /// The reports of several shards, added up.
    pub fn sum(reports: impl IntoIterator<Item = PurgeReport>) -> Self {
        reports.into_iter().fold(Self::default(), |a, r| Self {
            items_read: a.items_read + r.items_read,
            deleted: a.deleted + r.deleted,
        })
    }
}

/// One request counted against a token's rate limit in its minute
/// ([`Store::count_request`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateCount {
    /// Allowed: the `count`th request of the minute (1 to the limit).
    Within { count: u32 },
    /// Refused, and the first request of the minute to be refused.
    FirstOver,
    /// Refused; an earlier request of the minute was refused already.
    Over,
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
pub trait Store: identities::IdentityStore + Send + Sync {
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

    /// One round trip: deletes an event written beside an operation that
    /// then did not happen (a gone event is fine), so that no event
    /// describes it. Not for reads: [`Store::unrecord_read`] takes those back.
    async fn retract_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

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

    /// Destroys the previous versions whose window closed at or before
    /// `now` (their ciphertext and wrapped key), reading only those.
    async fn retire_versions(&self, now: Timestamp) -> Result<PurgeReport, StoreError>;

    /// One round trip, one conditional write of one small item keyed by the
    /// token and the UTC minute (`minute`: epoch seconds / 60): counts one
    /// request against `limit`. Atomic across instances: of any number of
    /// concurrent calls for one token and minute, exactly `limit` answer
    /// `Within` (counts 1 to `limit`), one `FirstOver`, the rest `Over`; the
    /// stored count never passes `limit + 1`.
    async fn count_request(&self, token: &TokenId, minute: i64, limit: u32) -> Result<RateCount, StoreError>;

    /// Sets (or, with `None`, removes) a tenant's monthly quota of value
    /// reads. Operator path; `NotFound` without the tenant.
    async fn set_quota(&self, tenant: &TenantId, reads_per_month: Option<u64>) -> Result<(), StoreError>;

    /// One round trip, one conditional write of the tenant's counter for
    /// `month` (UTC): counts one value read if fewer than `quota`
    /// were counted; `Ok(false)`, writing nothing, if `quota` were. Atomic
    /// across instances: the count never passes the quota.
    async fn count_quota_read(&self, tenant: &TenantId, month: Month, quota: u64) -> Result<bool, StoreError>;

    /// Takes back a [`Store::count_quota_read`] whose read was not served
    /// (never below zero).
    async fn uncount_quota_read(&self, tenant: &TenantId, month: Month) -> Result<(), StoreError>;

    /// One round trip (consistent): the reads counted for `month`.
    async fn quota_used(&self, tenant: &TenantId, month: Month) -> Result<u64, StoreError>;

    /// Claims the expiry notices due at `now` ([`TokenRecord::notice_second`]),
    /// reading only those: each token's notice is claimed once (a concurrent
    /// run's claim of the same token fails), and the claimed tokens that are
    /// still live are answered for the caller to send. A revoked or expired
    /// token's notice is dropped unsent.
    async fn claim_expiry_notices(&self, now: Timestamp) -> Result<Vec<ExpiryNotice>, StoreError>;

    /// Puts back a claimed notice that could not be sent, for the next run.
    async fn release_expiry_notice(&self, token: &TokenId, notice_second: i64) -> Result<(), StoreError>;
}
