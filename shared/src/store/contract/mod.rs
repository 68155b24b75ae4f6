//! The storage port's contract: one suite that every adapter must pass, so
//! that the in-memory store behind `ibyok dev` and the DynamoDB store mean
//! the same thing. Each case is a public async function over a fresh store;
//! [`store_contract_tests!`](crate::store_contract_tests) turns them all into
//! `#[tokio::test]`s for one adapter. The memory store runs them in this
//! crate's unit tests; `tests/tests/store_contract.rs` runs them against the
//! DynamoDB adapter on the local AWS-protocol server.
//!
//! Each case goes through the port only, and checks what a write leaves
//! behind: records, counters, purge times and audit events, including the
//! events that must not be written.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code (behind the `contract` feature): a failed unwrap is a failed case"
)]

use super::*;
use crate::bootstrap;
use crate::clock::Month;
use crate::clock::Timestamp;
use crate::envelope::Envelope;
use crate::ids::{KeyId, TenantId, TokenId};
use crate::mode::{Environment, Mode, ModeOverrides, Source, TenantModes};
use crate::token::Grant;
use crate::token::{ParsedToken, Scope, Scopes};
use std::sync::Arc;

// One file per aggregate, as the port is split.
mod audit;
pub use audit::*;
mod digests;
pub use digests::*;
mod identities;
pub use identities::*;
mod keys;
pub use keys::*;
mod limits;
pub use limits::*;
mod members;
pub use members::*;
mod notices;
pub use notices::*;
mod reads;
pub use reads::*;
mod tenants;
pub use tenants::*;
mod tokens;
pub use tokens::*;
mod usage;
pub use usage::*;

/// Lets a store's counters catch up with the reads it recorded.
pub type Settle = Arc<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// A store under test, and how its counters catch up with its reads: the
/// memory store counts at once; the DynamoDB store counts when the audit
/// stream is applied ([`crate::usage`]), which its harness does on `settle`.
#[derive(Clone)]
pub struct Subject {
    pub store: Arc<dyn Store>,
    pub settle: Option<Settle>,
}

impl From<Arc<dyn Store>> for Subject {
    fn from(store: Arc<dyn Store>) -> Self {
        Self { store, settle: None }
    }
}

/// A fixed time, far from the epoch, on a whole second.
pub const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

/// A tenant with its root token, in a fresh store.
pub struct World {
    pub store: Arc<dyn Store>,
    settle: Option<Settle>,
    pub tenant: TenantId,
    pub root: TokenRecord,
}

pub async fn world(subject: Subject) -> World {
    let Subject { store, settle } = subject;
    let b = bootstrap::create_tenant(store.as_ref(), "contract", T0).await.expect("bootstrap");
    World { store, settle, tenant: b.tenant.tenant_id, root: b.root }
}

impl World {
    /// Waits until the counters reflect every read recorded so far.
    pub async fn settle(&self) {
        if let Some(settle) = &self.settle {
            settle().await;
        }
    }

    pub fn event(&self, action: AuditAction, at: Timestamp) -> AuditEvent {
        event_in(&self.tenant, action, at)
    }

    /// A successful read's event, as the read path writes it.
    pub fn read_event(&self, key: &KeyId, token: &TokenId, at: Timestamp) -> AuditEvent {
        AuditEvent {
            key_id: Some(key.clone()),
            token_id: Some(token.clone()),
            environment: Some(Environment::Development),
            effective_mode: Some(Mode::Mock),
            ..self.event(AuditAction::KeyRead, at)
        }
    }

    pub fn key(&self, name: &str, at: Timestamp) -> KeyRecord {
        KeyRecord {
            key_id: KeyId::generate(&self.tenant),
            tenant_id: self.tenant.clone(),
            name: name.to_owned(),
            llm_type: "openai".into(),
            mode_overrides: ModeOverrides::new(),
            created_at: at,
            updated_at: at,
            last_used_at: None,
            retrievals: 0,
            current: version(1, at),
            previous: None,
            pending: None,
            last_version: 1,
        }
    }

    /// A child of `issuer`, created at `at`, expiring `ttl_seconds` later.
    pub fn child(&self, issuer: &TokenRecord, at: Timestamp, ttl_seconds: i64) -> TokenRecord {
        let parsed = ParsedToken::generate();
        let mut ancestors = issuer.ancestors.clone();
        ancestors.push(issuer.token_id.clone());
        TokenRecord {
            token_id: parsed.id().clone(),
            tenant_id: self.tenant.clone(),
            verifier: parsed.verifier().to_vec(),
            name: "child".into(),
            grant: Grant {
                scopes: [Scope::KeysRead].into_iter().collect::<Scopes>(),
                expires_at: at.plus_seconds(ttl_seconds),
                key_ids: None,
                allowed_cidrs: None,
                rate_limit: None,
            },
            created_at: at,
            issued_by: Some(issuer.token_id.clone()),
            ancestors,
            revoked_at: None,
            last_used_at: None,
            uses: 0,
            identity_id: None,
            member_id: None,
        }
    }

    /// Revokes `id` with no expiry given (the store finds out).
    pub async fn revoke(&self, id: &TokenId, at: Timestamp, grace: i64) -> Result<Vec<TokenId>, StoreError> {
        let target = Revocable { token_id: id.clone(), expires_at: None };
        let children = self.store.revoke_token(&self.tenant, &target, at, grace).await?;
        Ok(children.into_iter().map(|c| c.token_id).collect())
    }

    /// Revokes `t` with its expiry given, as revocation passes it down.
    pub async fn revoke_known(&self, t: &TokenRecord, at: Timestamp, grace: i64) -> Result<Vec<Revocable>, StoreError> {
        let target = Revocable { token_id: t.token_id.clone(), expires_at: Some(t.grant.expires_at) };
        self.store.revoke_token(&self.tenant, &target, at, grace).await
    }

    /// The token as stored, its counters settled; every read without its
    /// counters (from the store's copies, where it keeps them) agrees.
    pub async fn token(&self, id: &TokenId) -> Option<TokenRecord> {
        self.settle().await;
        let want = Fetch { tokens: vec![id.clone()], ..Fetch::default() };
        let got = self.store.fetch(&Fetch { usage: true, ..want.clone() }).await.unwrap();
        let stored = got.tokens.get(id).cloned();
        let bare = |t: &TokenRecord| TokenRecord { uses: 0, last_used_at: None, ..t.clone() };
        for read in self.reads(&want).await {
            assert_eq!(read.tokens.get(id).map(bare), stored.as_ref().map(bare), "every read agrees with the item");
        }
        stored
    }

    /// The key as stored, its counters settled; every read without its
    /// counters agrees.
    pub async fn get_key(&self, id: &KeyId) -> Option<KeyRecord> {
        self.settle().await;
        let want = Fetch { keys: vec![id.clone()], ..Fetch::default() };
        let got = self.store.fetch(&Fetch { usage: true, ..want.clone() }).await.unwrap();
        let stored = got.keys.get(id).cloned();
        let bare = |k: &KeyRecord| KeyRecord { retrievals: 0, last_used_at: None, ..k.clone() };
        for read in self.reads(&want).await {
            assert_eq!(read.keys.get(id).map(bare), stored.as_ref().map(bare), "every read agrees with the item");
        }
        stored
    }

    /// `want` fetched as a request does, twice as many times as the DynamoDB
    /// adapter keeps copies of each record (it reads them in turn).
    async fn reads(&self, want: &Fetch) -> Vec<Fetched> {
        let mut out = Vec::new();
        for _ in 0..2 * crate::store::schema::RECORD_REPLICAS {
            out.push(self.store.fetch(want).await.unwrap());
        }
        out
    }

    pub async fn modes(&self) -> TenantModes {
        let got = self.store.fetch(&Fetch { tenant: Some(self.tenant.clone()), ..Fetch::default() }).await.unwrap();
        got.tenant.expect("tenant").modes
    }

    /// Every audit event of the tenant, newest first, through the cursors.
    pub async fn audit(&self) -> Vec<AuditEvent> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.store.list_audit(&self.tenant, 2, cursor.as_deref()).await.unwrap();
            out.extend(page.items);
            match page.next {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    pub async fn actions(&self) -> Vec<AuditAction> {
        self.audit().await.iter().map(|e| e.action).collect()
    }

    /// A key stored with three versions at `T0`: v1 previous for 60 s, v2
    /// current, v3 pending. Answers the key as created and as stored.
    pub async fn three_versions(&self) -> (KeyRecord, KeyRecord) {
        let key = self.key("k", T0);
        self.store.create_key(&key, &self.event(AuditAction::KeyCreate, T0)).await.unwrap();
        let rotate = key.rotation(version(2, T0), 60, T0);
        self.store
            .update_key(&self.tenant, &key.key_id, &rotate, T0, &self.event(AuditAction::KeyRotate, T0))
            .await
            .unwrap();
        let got = self.get_key(&key.key_id).await.unwrap();
        let stage = got.staging(version(3, T0));
        self.store
            .update_key(&self.tenant, &key.key_id, &stage, T0, &self.event(AuditAction::KeyRotate, T0))
            .await
            .unwrap();
        let got = self.get_key(&key.key_id).await.unwrap();
        (key, got)
    }

    /// An expected read of `key` by the root token that holds right now.
    pub fn expect_read(&self, key: &KeyRecord) -> ExpectedRead {
        ExpectedRead {
            tenant_id: self.tenant.clone(),
            token_id: self.root.token_id.clone(),
            verifier: self.root.verifier.clone(),
            key_id: key.key_id.clone(),
            key_name: key.name.clone(),
            llm_type: key.llm_type.clone(),
            environment: Environment::Development,
            mode: Mode::Mock,
            source: Source::TenantSetting,
            envelope: None,
            version: PlannedVersion { number: key.current.number, stage: Stage::Current },
        }
    }
}

/// A version with a fresh (fake) envelope.
pub fn version(number: u64, at: Timestamp) -> KeyVersion {
    let envelope =
        Envelope { ciphertext: crate::ids::random_base62(24).into_bytes(), nonce: [7; 12], wrapped_key: vec![9; 40] };
    KeyVersion::new(number, at, format!("…v{number:03}"), envelope)
}

pub fn event_in(tenant: &TenantId, action: AuditAction, at: Timestamp) -> AuditEvent {
    AuditEvent::by_operator(tenant, action, at, 1)
}

pub(crate) fn assert_conflict(r: Result<(), StoreError>, want: Conflict, what: &str) {
    match r {
        Err(StoreError::Conflict(c)) => assert_eq!(c, want, "{what}"),
        other => panic!("{what}: expected Conflict({want:?}), got {other:?}"),
    }
}

/// Every case, by name, for [`store_contract_tests!`](crate::store_contract_tests).
#[macro_export]
macro_rules! store_contract_tests {
    ($make:expr) => {
        $crate::store_contract_tests!(@cases $make;
            fetch_answers_only_what_exists,
            create_tenant_never_overwrites,
            update_modes_writes_the_change_and_its_event_together,
            update_modes_without_changes_writes_no_event,
            update_modes_of_a_missing_tenant_writes_nothing,
            create_key_writes_the_key_and_one_event,
            create_key_never_overwrites,
            update_key_changes_value_or_metadata,
            update_key_elsewhere_is_not_found_and_writes_nothing,
            versions_rotate_stage_and_promote,
            retire_versions_destroys_due_previous_versions_only,
            expected_read_follows_the_version,
            delete_key_removes_it_once,
            list_keys_pages_oldest_first_within_the_tenant,
            record_read_counts_on_the_key_and_the_token,
            record_read_of_a_vanished_key_or_token_stores_nothing_for_it,
            unrecord_read_takes_back_counts_and_event_never_below_zero,
            expected_read_is_recorded_only_while_every_expectation_holds,
            expected_read_follows_the_tenant_setting,
            expected_read_needs_a_live_token,
            apply_usage_is_exact_under_redelivery,
            retract_event_removes_that_event_only,
            create_token_records_the_child_for_its_issuer,
            create_token_never_overwrites,
            create_token_needs_a_live_issuer,
            revoke_keeps_the_first_revocation,
            purge_follows_the_purge_rule,
            a_purged_child_leaves_its_issuer,
            list_tokens_pages_oldest_first,
            audit_lists_newest_first_with_cursors,
            audit_pages_are_exact_when_one_shard_holds_most_events,
            digests_are_written_once_and_listed_newest_first,
            shard_events_are_one_shards_range_in_order,
            digest_run_covers_settled_events_and_verifies,
            count_request_stops_at_the_limit_per_token_and_minute,
            count_request_is_exact_under_concurrency,
            quota_is_set_on_the_tenant_and_removed,
            quota_counts_stop_at_the_quota_per_tenant_and_month,
            expiry_notices_are_claimed_once_seven_days_before_expiry,
            identities_are_created_once_by_a_live_creator,
            an_exchange_writes_its_token_under_creator_and_identity_and_claims_its_jti_once,
            deleting_an_identity_marks_it_once_and_answers_its_tokens,
            list_identities_pages_oldest_first_within_the_tenant,
            members_are_invited_once_per_tenant,
            the_last_owner_stays,
            concurrent_demotions_keep_an_owner,
            list_members_pages_oldest_first_within_the_tenant,
            sign_in_binds_an_invitation_to_the_person,
            pending_sign_in_items_are_taken_once,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store: $crate::store::contract::Subject = $make.await;
                $crate::store::contract::$case(store).await;
            }
        )*
    };
}

#[cfg(test)]
mod memory_store {
    use crate::store::memory::MemoryStore;
    use std::sync::Arc;

    crate::store_contract_tests!(async {
        crate::store::contract::Subject::from(Arc::new(MemoryStore::new()) as Arc<dyn crate::store::Store>)
    });
}
