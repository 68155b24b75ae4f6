//! The read path: what one request needs fetched in one round trip, and a
//! value read recorded (its audit event, the only write of a read), with or
//! without a plan ([`ExpectedRead`]).

use super::{AuditEvent, KeyRecord, PlannedVersion, StoreError, TenantRecord, TokenRecord};
use crate::clock::Timestamp;
use crate::envelope::Envelope;
use crate::ids::{KeyId, TenantId, TokenId};
use crate::mode::{Environment, Mode, ModeRequirement, Source, TenantModes};
use async_trait::async_trait;
use std::collections::HashMap;

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
/// what the store must still hold for [`ReadStore::record_expected_read`] to
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

/// The read path: one fetch, and reads recorded and taken back.
#[async_trait]
pub trait ReadStore: Send + Sync {
    /// One round trip (`BatchGetItem`, consistent reads).
    async fn fetch(&self, want: &Fetch) -> Result<Fetched, StoreError>;

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
}
