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

use super::*;
use crate::bootstrap;
use crate::clock::Month;
use crate::ids::new_event_id;
use crate::token::{ParsedToken, Scope, Scopes};
use std::sync::Arc;

/// A store under test.
pub type Subject = Arc<dyn Store>;

/// A fixed time, far from the epoch, on a whole second.
pub const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

/// A tenant with its root token, in a fresh store.
pub struct World {
    pub store: Subject,
    pub tenant: TenantId,
    pub root: TokenRecord,
}

pub async fn world(store: Subject) -> World {
    let b = bootstrap::create_tenant(store.as_ref(), "contract", T0).await.expect("bootstrap");
    World { store, tenant: b.tenant.tenant_id, root: b.root }
}

impl World {
    pub fn event(&self, action: AuditAction, at: Timestamp) -> AuditEvent {
        event_in(&self.tenant, action, at)
    }

    pub fn key(&self, name: &str, at: Timestamp) -> KeyRecord {
        KeyRecord {
            key_id: KeyId::generate(&self.tenant),
            tenant_id: self.tenant.clone(),
            name: name.to_owned(),
            llm_type: "openai".into(),
            preview: "…ab12".into(),
            mode_overrides: ModeOverrides::new(),
            created_at: at,
            updated_at: at,
            last_used_at: None,
            retrievals: 0,
            envelope: Envelope {
                ciphertext: crate::ids::random_base62(24).into_bytes(),
                nonce: [7; 12],
                wrapped_key: vec![9; 40],
            },
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

    pub async fn token(&self, id: &TokenId) -> Option<TokenRecord> {
        let got = self.store.fetch(&Fetch { tokens: vec![id.clone()], ..Fetch::default() }).await.unwrap();
        got.tokens.get(id).cloned()
    }

    pub async fn get_key(&self, id: &KeyId) -> Option<KeyRecord> {
        let got = self.store.fetch(&Fetch { keys: vec![id.clone()], ..Fetch::default() }).await.unwrap();
        got.keys.get(id).cloned()
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
        }
    }
}

pub fn event_in(tenant: &TenantId, action: AuditAction, at: Timestamp) -> AuditEvent {
    AuditEvent {
        tenant_id: Some(tenant.clone()),
        at,
        request_id: crate::ids::new_request_id(),
        action,
        token_id: None,
        key_id: None,
        environment: None,
        effective_mode: None,
        outcome: Outcome::Ok,
        source_ip: None,
        user_agent: None,
        event_id: new_event_id(),
        retain_until: Some(at.plus_seconds(86_400)),
    }
}

fn assert_conflict(r: Result<(), StoreError>, want: Conflict, what: &str) {
    match r {
        Err(StoreError::Conflict(c)) => assert_eq!(c, want, "{what}"),
        other => panic!("{what}: expected Conflict({want:?}), got {other:?}"),
    }
}

// ------------------------------------------------------------ fetch, tenants

pub async fn fetch_answers_only_what_exists(store: Subject) {
    let w = world(store).await;
    let missing_token = ParsedToken::generate().id().clone();
    let missing_key = KeyId::generate(&w.tenant);
    let got = w
        .store
        .fetch(&Fetch {
            tokens: vec![w.root.token_id.clone(), missing_token.clone(), w.root.token_id.clone()],
            keys: vec![missing_key],
            tenant: Some(w.tenant.clone()),
        })
        .await
        .unwrap();
    assert_eq!(got.tokens.len(), 1);
    assert_eq!(got.tokens[&w.root.token_id], w.root, "a token reads back as written");
    assert!(got.keys.is_empty());
    assert_eq!(got.tenant.map(|t| t.modes), Some(TenantModes::default()));
    let none = w.store.fetch(&Fetch { tenant: Some(TenantId::generate()), ..Fetch::default() }).await.unwrap();
    assert!(none.tenant.is_none());
}

pub async fn create_tenant_never_overwrites(store: Subject) {
    let w = world(store).await;
    let tenant = TenantRecord {
        tenant_id: w.tenant.clone(),
        name: "again".into(),
        modes: TenantModes::default(),
        created_at: T0,
        reads_per_month: None,
    };
    let (root, _) = bootstrap::root_token(&w.tenant, "again", T0);
    assert_conflict(w.store.create_tenant(&tenant, &root).await, Conflict::Exists, "same tenant id");
    assert!(w.token(&root.token_id).await.is_none(), "the refused tenant's root token was not written");
}

// ------------------------------------------------------------ settings

pub async fn update_modes_writes_the_change_and_its_event_together(store: Subject) {
    let w = world(store).await;
    let audit = w.event(AuditAction::SettingsUpdate, T0);
    let modes = w.store.update_modes(&w.tenant, &[(Environment::Staging, Mode::Live)], &audit).await.unwrap();
    assert_eq!(modes.staging, Mode::Live);
    assert_eq!(modes.development, Mode::Mock, "the rest stays");
    assert_eq!(w.modes().await, modes, "answers the stored whole");
    assert_eq!(w.actions().await, vec![AuditAction::SettingsUpdate]);
}

pub async fn update_modes_without_changes_writes_no_event(store: Subject) {
    let w = world(store).await;
    let audit = w.event(AuditAction::SettingsUpdate, T0);
    let modes = w.store.update_modes(&w.tenant, &[], &audit).await.unwrap();
    assert_eq!(modes, TenantModes::default());
    assert!(w.audit().await.is_empty(), "no change, no event");
}

pub async fn update_modes_of_a_missing_tenant_writes_nothing(store: Subject) {
    let w = world(store).await;
    let ghost = TenantId::generate();
    let audit = event_in(&ghost, AuditAction::SettingsUpdate, T0);
    let r = w.store.update_modes(&ghost, &[(Environment::Staging, Mode::Live)], &audit).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert!(w.store.list_audit(&ghost, 10, None).await.unwrap().items.is_empty(), "no event for a failed update");
    let got = w.store.fetch(&Fetch { tenant: Some(ghost), ..Fetch::default() }).await.unwrap();
    assert!(got.tenant.is_none(), "no tenant item made by the update");
}

// ------------------------------------------------------------ keys

pub async fn create_key_writes_the_key_and_one_event(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    assert_eq!(w.get_key(&key.key_id).await.as_ref(), Some(&key), "reads back as written");
    // A retry of the same write (same ciphertext) is recognised, and writes
    // no second event.
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    assert_eq!(w.actions().await, vec![AuditAction::KeyCreate]);
}

pub async fn create_key_never_overwrites(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let other = KeyRecord { name: "other".into(), ..w.key("k", T0) };
    let other = KeyRecord { key_id: key.key_id.clone(), ..other };
    assert_conflict(w.store.create_key(&other, &w.event(AuditAction::KeyCreate, T0)).await, Conflict::Exists, "key id");
    assert_eq!(w.get_key(&key.key_id).await.map(|k| k.name), Some("k".into()), "the first write stays");
    assert_eq!(w.actions().await, vec![AuditAction::KeyCreate], "no event for the refused write");
}

pub async fn update_key_changes_value_or_metadata(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let t1 = T0.plus_seconds(5);
    let envelope = Envelope { ciphertext: vec![1; 30], nonce: [3; 12], wrapped_key: vec![4; 40] };
    let change = KeyChange::Value { envelope: envelope.clone(), preview: "…zz99".into() };
    w.store.update_key(&w.tenant, &key.key_id, &change, t1, &w.event(AuditAction::KeyRotate, t1)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((got.envelope, got.preview.as_str(), got.updated_at), (envelope, "…zz99", t1));
    assert_eq!(got.name, "k", "a value change keeps the metadata");
    let t2 = T0.plus_seconds(9);
    let overrides = ModeOverrides::from([(Environment::Production, Mode::Mock)]);
    let change = KeyChange::Meta { name: "renamed".into(), mode_overrides: overrides.clone() };
    w.store.update_key(&w.tenant, &key.key_id, &change, t2, &w.event(AuditAction::KeyUpdate, t2)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((got.name.as_str(), &got.mode_overrides, got.updated_at), ("renamed", &overrides, t2));
    assert_eq!(got.preview, "…zz99", "a metadata change keeps the value");
    assert_eq!(w.actions().await, vec![AuditAction::KeyUpdate, AuditAction::KeyRotate, AuditAction::KeyCreate]);
}

pub async fn update_key_elsewhere_is_not_found_and_writes_nothing(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let change = KeyChange::Meta { name: "stolen".into(), mode_overrides: ModeOverrides::new() };
    let other = TenantId::generate();
    let r = w.store.update_key(&other, &key.key_id, &change, T0, &event_in(&other, AuditAction::KeyUpdate, T0)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "another tenant's key: {r:?}");
    let missing = KeyId::generate(&w.tenant);
    let r = w.store.update_key(&w.tenant, &missing, &change, T0, &w.event(AuditAction::KeyUpdate, T0)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "a missing key: {r:?}");
    assert_eq!(w.get_key(&key.key_id).await.map(|k| k.name), Some("k".into()));
    assert_eq!(w.actions().await, vec![AuditAction::KeyCreate], "no event for a refused update");
    assert!(w.store.list_audit(&other, 10, None).await.unwrap().items.is_empty());
    assert!(w.get_key(&missing).await.is_none(), "an update never creates a key");
}

pub async fn delete_key_removes_it_once(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let other = TenantId::generate();
    let r = w.store.delete_key(&other, &key.key_id, &event_in(&other, AuditAction::KeyDelete, T0)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "another tenant's key: {r:?}");
    assert!(w.get_key(&key.key_id).await.is_some());
    w.store.delete_key(&w.tenant, &key.key_id, &w.event(AuditAction::KeyDelete, T0)).await.unwrap();
    assert!(w.get_key(&key.key_id).await.is_none());
    // Gone already (a retry, or a concurrent delete): done, and its
    // deletion already wrote the event.
    w.store.delete_key(&w.tenant, &key.key_id, &w.event(AuditAction::KeyDelete, T0)).await.unwrap();
    assert_eq!(w.actions().await, vec![AuditAction::KeyDelete, AuditAction::KeyCreate]);
}

pub async fn list_keys_pages_oldest_first_within_the_tenant(store: Subject) {
    let w = world(store).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let key = w.key(&format!("k{i}"), T0.plus_seconds(i));
        w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
        ids.push(key.key_id);
    }
    let (other, _) = {
        let b = bootstrap::create_tenant(w.store.as_ref(), "other", T0).await.unwrap();
        (b.tenant.tenant_id, b.root)
    };
    let stranger = KeyRecord { tenant_id: other.clone(), key_id: KeyId::generate(&other), ..w.key("x", T0) };
    w.store.create_key(&stranger, &event_in(&other, AuditAction::KeyCreate, T0)).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = w.store.list_keys(&w.tenant, 2, cursor.as_deref()).await.unwrap();
        assert!(page.items.len() <= 2, "a page holds at most the limit");
        seen.extend(page.items.into_iter().map(|k| k.key_id));
        match page.next {
            Some(c) => {
                let r = w.store.list_keys(&other, 2, Some(&c)).await;
                assert!(matches!(r, Err(StoreError::BadCursor)), "another tenant's cursor: {r:?}");
                cursor = Some(c);
            }
            None => break,
        }
    }
    assert_eq!(seen, ids, "every key once, oldest first, none of another tenant");
    for bad in ["", "not-a-cursor", "eyJ0ZW5hbnRJZCI6IlN4In0"] {
        let r = w.store.list_keys(&w.tenant, 2, Some(bad)).await;
        assert!(matches!(r, Err(StoreError::BadCursor)), "{bad:?}: {r:?}");
    }
}

// ------------------------------------------------------------ reads

pub async fn record_read_counts_on_the_key_and_the_token(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let t1 = T0.plus_seconds(3);
    for _ in 0..3 {
        w.store.record_read(&key.key_id, &w.root.token_id, t1, &w.event(AuditAction::KeyRead, t1)).await.unwrap();
    }
    let k = w.get_key(&key.key_id).await.unwrap();
    let t = w.token(&w.root.token_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (3, Some(t1)));
    assert_eq!((t.uses, t.last_used_at), (3, Some(t1)));
    assert_eq!(w.actions().await.iter().filter(|a| **a == AuditAction::KeyRead).count(), 3);
}

pub async fn record_read_of_a_vanished_key_or_token_leaves_nothing(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let gone_token = ParsedToken::generate().id().clone();
    let r = w.store.record_read(&key.key_id, &gone_token, T0, &w.event(AuditAction::KeyRead, T0)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "token gone: {r:?}");
    let gone_key = KeyId::generate(&w.tenant);
    let r = w.store.record_read(&gone_key, &w.root.token_id, T0, &w.event(AuditAction::KeyRead, T0)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "key gone: {r:?}");
    let k = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (0, None), "the key's count was taken back");
    assert_eq!(w.token(&w.root.token_id).await.unwrap().uses, 0, "the token's count was taken back");
    assert_eq!(w.actions().await, vec![AuditAction::KeyCreate], "no event describes a read that failed");
}

pub async fn unrecord_read_takes_back_counts_and_event_never_below_zero(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let read = w.event(AuditAction::KeyRead, T0);
    w.store.record_read(&key.key_id, &w.root.token_id, T0, &read).await.unwrap();
    w.store.unrecord_read(&key.key_id, &w.root.token_id, &read).await.unwrap();
    assert_eq!(w.get_key(&key.key_id).await.unwrap().retrievals, 0);
    assert_eq!(w.token(&w.root.token_id).await.unwrap().uses, 0);
    assert_eq!(w.actions().await, vec![AuditAction::KeyCreate], "the failed read's event is gone");
    w.store.unrecord_read(&key.key_id, &w.root.token_id, &read).await.unwrap();
    assert_eq!(w.get_key(&key.key_id).await.unwrap().retrievals, 0, "never below zero");
    assert_eq!(w.token(&w.root.token_id).await.unwrap().uses, 0, "never below zero");
}

/// Each expectation, broken alone, makes the write a no-op; while all hold,
/// the read is recorded as `record_read` records it.
pub async fn expected_read_is_recorded_only_while_every_expectation_holds(store: Subject) {
    let w = world(store).await;
    let key = KeyRecord { mode_overrides: ModeOverrides::from([(Environment::Staging, Mode::Live)]), ..w.key("k", T0) };
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let holds = w.expect_read(&key);
    type Break<'a> = Box<dyn Fn(&mut ExpectedRead) + 'a>;
    let broken: Vec<(&str, Break)> = vec![
        ("verifier", Box::new(|e| e.verifier[0] ^= 1)),
        ("tenant", Box::new(|e| e.tenant_id = TenantId::generate())),
        ("name", Box::new(|e| e.key_name = "old".into())),
        ("llm type", Box::new(|e| e.llm_type = "groq".into())),
        ("tenant setting", Box::new(|e| e.mode = Mode::Live)),
        ("override", Box::new(|e| e.source = Source::KeyOverride)),
        ("override mode", Box::new(|e| (e.environment, e.source) = (Environment::Staging, Source::KeyOverride))),
        ("override beats setting", Box::new(|e| (e.environment, e.mode) = (Environment::Staging, Mode::Mock))),
        ("envelope", Box::new(|e| e.envelope = Some(Envelope { nonce: [8; 12], ..key.envelope.clone() }))),
        ("other key", Box::new(|e| e.key_id = KeyId::generate(&e.tenant_id))),
        ("other token", Box::new(|e| e.token_id = ParsedToken::generate().id().clone())),
    ];
    for (what, break_it) in &broken {
        let mut e = holds.clone();
        break_it(&mut e);
        assert!(!w.store.record_expected_read(&e, T0, &w.event(AuditAction::KeyRead, T0)).await.unwrap(), "{what}");
    }
    assert_eq!(w.actions().await, vec![AuditAction::KeyCreate], "no event for a plan that failed");
    let staging = ExpectedRead {
        environment: Environment::Staging,
        mode: Mode::Live,
        source: Source::KeyOverride,
        ..holds.clone()
    };
    let live = ExpectedRead { envelope: Some(key.envelope.clone()), ..staging.clone() };
    let guarded = ExpectedRead { mode: Mode::Live, source: Source::Guardrail, ..holds.clone() };
    let t1 = T0.plus_seconds(1);
    for e in [&holds, &staging, &live, &guarded] {
        assert!(w.store.record_expected_read(e, t1, &w.event(AuditAction::KeyRead, t1)).await.unwrap());
    }
    let k = w.get_key(&key.key_id).await.unwrap();
    let t = w.token(&w.root.token_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (4, Some(t1)), "only the reads whose expectations held");
    assert_eq!((t.uses, t.last_used_at), (4, Some(t1)));
    assert_eq!(w.audit().await.len(), 5, "the key's creation and four reads");
    // A retry of a write that landed (the same event) is recognised as done
    // and counts nothing more.
    let again = w.event(AuditAction::KeyRead, t1);
    assert!(w.store.record_expected_read(&holds, t1, &again).await.unwrap());
    assert!(w.store.record_expected_read(&holds, t1, &again).await.unwrap(), "a retry of a landed write");
    assert_eq!(w.get_key(&key.key_id).await.unwrap().retrievals, 5, "counted once");
}

/// The tenant-setting rule: a tenant item without the setting serves the
/// default; a changed setting defeats the plan.
pub async fn expected_read_follows_the_tenant_setting(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let holds = w.expect_read(&key);
    assert!(w.store.record_expected_read(&holds, T0, &w.event(AuditAction::KeyRead, T0)).await.unwrap());
    w.store
        .update_modes(&w.tenant, &[(Environment::Development, Mode::Live)], &w.event(AuditAction::SettingsUpdate, T0))
        .await
        .unwrap();
    assert!(!w.store.record_expected_read(&holds, T0, &w.event(AuditAction::KeyRead, T0)).await.unwrap());
    let live = ExpectedRead { mode: Mode::Live, ..holds };
    assert!(w.store.record_expected_read(&live, T0, &w.event(AuditAction::KeyRead, T0)).await.unwrap());
}

/// The live-token rule holds the plan: expired or revoked, nothing recorded.
pub async fn expected_read_needs_a_live_token(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let holds = w.expect_read(&key);
    let expiry = w.root.grant.expires_at;
    let just_before = Timestamp::from_millis(expiry.millis() - 1);
    assert!(w
        .store
        .record_expected_read(&holds, just_before, &w.event(AuditAction::KeyRead, just_before))
        .await
        .unwrap());
    assert!(
        !w.store.record_expected_read(&holds, expiry, &w.event(AuditAction::KeyRead, expiry)).await.unwrap(),
        "expired"
    );
    w.revoke(&w.root.token_id, T0, 60).await.unwrap();
    assert!(!w.store.record_expected_read(&holds, T0, &w.event(AuditAction::KeyRead, T0)).await.unwrap(), "revoked");
    assert_eq!(w.get_key(&key.key_id).await.unwrap().retrievals, 1);
}

// ------------------------------------------------------------ tokens

pub async fn create_token_records_the_child_for_its_issuer(store: Subject) {
    let w = world(store).await;
    let child = w.child(&w.root, T0, 3600);
    w.store.create_token(&child, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    assert_eq!(w.token(&child.token_id).await.as_ref(), Some(&child), "reads back as written");
    // A retry of the same write (same verifier) is recognised.
    w.store.create_token(&child, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    assert_eq!(w.actions().await, vec![AuditAction::TokenCreate], "one event");
    let children = w.revoke_known(&w.root, T0, 60).await.unwrap();
    let expected = Revocable { token_id: child.token_id.clone(), expires_at: Some(child.grant.expires_at) };
    assert_eq!(children, vec![expected], "revocation finds the child, with its expiry");
}

pub async fn create_token_never_overwrites(store: Subject) {
    let w = world(store).await;
    let child = w.child(&w.root, T0, 3600);
    w.store.create_token(&child, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    let impostor = TokenRecord { token_id: child.token_id.clone(), ..w.child(&w.root, T0, 60) };
    let r = w.store.create_token(&impostor, &w.event(AuditAction::TokenCreate, T0)).await;
    assert_conflict(r, Conflict::Exists, "token id");
    assert_eq!(w.token(&child.token_id).await.map(|t| t.verifier), Some(child.verifier));
    assert_eq!(w.actions().await, vec![AuditAction::TokenCreate]);
}

/// The issuer must be live (the live-token rule) when the child is created:
/// revoked, expired and missing issuers are refused alike.
pub async fn create_token_needs_a_live_issuer(store: Subject) {
    let w = world(store).await;
    let revoked = w.child(&w.root, T0, 3600);
    let short = w.child(&w.root, T0, 10);
    for t in [&revoked, &short] {
        w.store.create_token(t, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    }
    w.revoke_known(&revoked, T0, 60).await.unwrap();
    let missing = w.child(&w.root, T0, 3600);
    let later = T0.plus_seconds(10);
    let cases = [
        ("revoked issuer", w.child(&revoked, T0, 60)),
        ("expired issuer", w.child(&short, later, 60)),
        ("missing issuer", w.child(&missing, T0, 60)),
    ];
    for (what, orphan) in &cases {
        let r = w.store.create_token(orphan, &w.event(AuditAction::TokenCreate, orphan.created_at)).await;
        assert_conflict(r, Conflict::IssuerNotLive, what);
        assert!(w.token(&orphan.token_id).await.is_none(), "{what}: nothing written");
    }
    assert_eq!(w.actions().await, vec![AuditAction::TokenCreate; 2], "no event for a refused issue");
}

pub async fn revoke_keeps_the_first_revocation(store: Subject) {
    let w = world(store).await;
    let child = w.child(&w.root, T0, 3600);
    w.store.create_token(&child, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    let first = T0.plus_seconds(1);
    assert!(w.revoke_known(&child, first, 60).await.unwrap().is_empty());
    w.revoke(&child.token_id, T0.plus_seconds(30), 60).await.unwrap();
    w.revoke_known(&child, T0.plus_seconds(31), 60).await.unwrap();
    assert_eq!(w.token(&child.token_id).await.unwrap().revoked_at, Some(first));
    let other = TenantId::generate();
    let root = Revocable { token_id: w.root.token_id.clone(), expires_at: Some(w.root.grant.expires_at) };
    let r = w.store.revoke_token(&other, &root, T0, 60).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "another tenant's token: {r:?}");
    assert!(w.token(&w.root.token_id).await.unwrap().revoked_at.is_none());
    let missing = ParsedToken::generate().id().clone();
    let r = w.revoke(&missing, T0, 60).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "a missing token: {r:?}");
    assert!(w.token(&missing).await.is_none(), "a revocation never creates a token");
}

/// Purge times follow `TokenRecord::purge_second`: expiry, or the grace
/// after the first revocation, whichever comes first, in whole seconds
/// rounded up; a second revocation never moves them.
pub async fn purge_follows_the_purge_rule(store: Subject) {
    let w = world(store).await;
    let grace = 100;
    // Expires at T0 + 1000.5 s, never revoked.
    let plain = TokenRecord {
        grant: Grant { expires_at: T0.plus_seconds(1000).plus_millis(500), ..w.child(&w.root, T0, 0).grant },
        ..w.child(&w.root, T0, 0)
    };
    // Revoked at T0 + 10 s: purged at T0 + 110 s; revoked again later.
    let revoked = w.child(&w.root, T0, 1000);
    // Expire at T0 + 50 s, revoked at T0 + 10 s: purged at expiry, whether
    // the revocation is given the expiry or not.
    let expiring = w.child(&w.root, T0, 50);
    let expiring_unknown = w.child(&w.root, T0, 50);
    for t in [&plain, &revoked, &expiring, &expiring_unknown] {
        w.store.create_token(t, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    }
    w.revoke(&revoked.token_id, T0.plus_seconds(10), grace).await.unwrap();
    w.revoke_known(&expiring, T0.plus_seconds(10), grace).await.unwrap();
    w.revoke(&expiring_unknown.token_id, T0.plus_seconds(10), grace).await.unwrap();
    w.revoke_known(&revoked, T0.plus_seconds(90), grace).await.unwrap();
    let due = [
        (T0.plus_seconds(49), vec![]),
        (T0.plus_seconds(50), vec![&expiring, &expiring_unknown]),
        (T0.plus_seconds(109), vec![]),
        (T0.plus_seconds(110), vec![&revoked]),
        (T0.plus_seconds(1000).plus_millis(500), vec![]),
        (T0.plus_seconds(1001), vec![&plain]),
    ];
    for (now, gone) in due {
        let report = w.store.purge_tokens(now).await.unwrap();
        assert_eq!(report.deleted, gone.len(), "at {now:?}");
        for t in gone {
            assert!(w.token(&t.token_id).await.is_none(), "purged at {now:?}");
        }
    }
    assert!(w.token(&w.root.token_id).await.is_some(), "the root token stays");
}

/// Nothing an issuer keeps grows with history: a purged child is no longer
/// among its issuer's children, and the issuer keeps issuing.
pub async fn a_purged_child_leaves_its_issuer(store: Subject) {
    let w = world(store).await;
    let issuer = w.child(&w.root, T0, 100_000);
    w.store.create_token(&issuer, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    let mut live = Vec::new();
    for round in 0..3 {
        let at = T0.plus_seconds(round * 100);
        for _ in 0..4 {
            let short = w.child(&issuer, at, 60);
            w.store.create_token(&short, &w.event(AuditAction::TokenCreate, at)).await.unwrap();
        }
        let kept = w.child(&issuer, at, 10_000);
        w.store.create_token(&kept, &w.event(AuditAction::TokenCreate, at)).await.unwrap();
        live.push(kept.token_id);
        let report = w.store.purge_tokens(at.plus_seconds(60)).await.unwrap();
        assert_eq!(report.deleted, 4, "round {round}: the short-lived children");
    }
    let mut children = w.revoke(&issuer.token_id, T0.plus_seconds(400), 60).await.unwrap();
    children.sort();
    live.sort();
    assert_eq!(children, live, "only the children still stored");
}

pub async fn list_tokens_pages_oldest_first(store: Subject) {
    let w = world(store).await;
    let mut ids = vec![w.root.token_id.clone()];
    for i in 1..=4 {
        let t = w.child(&w.root, T0.plus_seconds(i), 3600);
        w.store.create_token(&t, &w.event(AuditAction::TokenCreate, t.created_at)).await.unwrap();
        ids.push(t.token_id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = w.store.list_tokens(&w.tenant, 2, cursor.as_deref()).await.unwrap();
        seen.extend(page.items.into_iter().map(|t| t.token_id));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let r = w.store.list_tokens(&TenantId::generate(), 2, cursor.as_deref().or(Some("AAAA"))).await;
    assert!(matches!(r, Err(StoreError::BadCursor)), "{r:?}");
}

// ------------------------------------------------------------ audit

/// Newest first; events of one millisecond in the reverse of the order they
/// were made; paging by cursor loses and repeats nothing.
pub async fn audit_lists_newest_first_with_cursors(store: Subject) {
    let w = world(store).await;
    let mut made = Vec::new();
    for i in 0..7 {
        // Three events share a millisecond.
        let at = T0.plus_seconds(if i < 3 { 0 } else { i });
        let mut e = w.event(AuditAction::AuthDenied, at);
        e.request_id = format!("r{i}");
        e.outcome = Outcome::Denied;
        e.key_id = Some(KeyId::generate(&w.tenant));
        e.environment = Some(Environment::Staging);
        e.effective_mode = Some(Mode::Mock);
        e.source_ip = Some("10.0.0.1".into());
        e.user_agent = Some("contract".into());
        w.store.append_audit(&e).await.unwrap();
        made.push(e);
    }
    let listed = w.audit().await;
    let ids: Vec<&str> = listed.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(ids, ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
    let first = listed.iter().find(|e| e.request_id == "r4").unwrap();
    let want = &made[4];
    assert_eq!(
        (first.at, first.action, first.outcome, &first.key_id, first.environment, first.effective_mode),
        (want.at, want.action, want.outcome, &want.key_id, want.environment, want.effective_mode),
        "an event reads back as written"
    );
    assert_eq!((&first.source_ip, &first.user_agent), (&want.source_ip, &want.user_agent));
    let other = TenantId::generate();
    assert!(w.store.list_audit(&other, 10, None).await.unwrap().items.is_empty(), "one tenant's events only");
    let page = w.store.list_audit(&w.tenant, 3, None).await.unwrap();
    let r = w.store.list_audit(&other, 3, page.next.as_deref()).await;
    assert!(matches!(r, Err(StoreError::BadCursor)), "{r:?}");
}

pub async fn count_request_stops_at_the_limit_per_token_and_minute(store: Subject) {
    let w = world(store).await;
    let other = w.child(&w.root, T0, 3600);
    let minute = T0.seconds() / 60;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(w.store.count_request(&w.root.token_id, minute, 3).await.unwrap());
    }
    use RateCount::*;
    assert_eq!(got, [Within { count: 1 }, Within { count: 2 }, Within { count: 3 }, FirstOver, Over]);
    // Another minute, another token: counted apart.
    assert_eq!(w.store.count_request(&w.root.token_id, minute + 1, 3).await.unwrap(), Within { count: 1 });
    assert_eq!(w.store.count_request(&other.token_id, minute, 3).await.unwrap(), Within { count: 1 });
    // A limit of one.
    assert_eq!(w.store.count_request(&other.token_id, minute + 7, 1).await.unwrap(), Within { count: 1 });
    assert_eq!(w.store.count_request(&other.token_id, minute + 7, 1).await.unwrap(), FirstOver);
    assert!(w.actions().await.is_empty(), "counting writes no event");
}

pub async fn count_request_is_exact_under_concurrency(store: Subject) {
    let w = world(store).await;
    let minute = T0.seconds() / 60;
    let calls = (0..40).map(|_| w.store.count_request(&w.root.token_id, minute, 10));
    let got: Vec<RateCount> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    let mut within: Vec<u32> =
        got.iter().filter_map(|c| if let RateCount::Within { count } = c { Some(*count) } else { None }).collect();
    within.sort_unstable();
    assert_eq!(within, (1..=10).collect::<Vec<_>>());
    assert_eq!(got.iter().filter(|c| **c == RateCount::FirstOver).count(), 1);
    assert_eq!(got.iter().filter(|c| **c == RateCount::Over).count(), 29);
}

pub async fn quota_is_set_on_the_tenant_and_removed(store: Subject) {
    let w = world(store).await;
    let tenant = || async { w.store.fetch(&Fetch { tenant: Some(w.tenant.clone()), ..Fetch::default() }).await };
    assert_eq!(tenant().await.unwrap().tenant.unwrap().reads_per_month, None);
    w.store.set_quota(&w.tenant, Some(1_000)).await.unwrap();
    let t = tenant().await.unwrap().tenant.unwrap();
    assert_eq!(t.reads_per_month, Some(1_000));
    assert_eq!(t.modes, TenantModes::default(), "the rest of the tenant stays");
    w.store.set_quota(&w.tenant, None).await.unwrap();
    assert_eq!(tenant().await.unwrap().tenant.unwrap().reads_per_month, None);
    let r = w.store.set_quota(&TenantId::generate(), Some(1)).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert!(w.actions().await.is_empty(), "an operator change writes no event");
}

pub async fn quota_counts_stop_at_the_quota_per_tenant_and_month(store: Subject) {
    let w = world(store).await;
    let month = Month::of(T0);
    assert_eq!(w.store.quota_used(&w.tenant, month).await.unwrap(), 0);
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(w.store.count_quota_read(&w.tenant, month, 3).await.unwrap());
    }
    assert_eq!(got, [true, true, true, false]);
    assert_eq!(w.store.quota_used(&w.tenant, month).await.unwrap(), 3, "a refusal counts nothing");
    // A raised quota admits more; another month and another tenant start at zero.
    assert!(w.store.count_quota_read(&w.tenant, month, 4).await.unwrap());
    assert!(w.store.count_quota_read(&w.tenant, month.next(), 1).await.unwrap());
    let other = TenantId::generate();
    assert!(w.store.count_quota_read(&other, month, 1).await.unwrap());
    assert_eq!(w.store.quota_used(&w.tenant, month).await.unwrap(), 4);
    assert_eq!(w.store.quota_used(&w.tenant, month.next()).await.unwrap(), 1);
    // Taken back, never below zero.
    w.store.uncount_quota_read(&w.tenant, month.next()).await.unwrap();
    w.store.uncount_quota_read(&w.tenant, month.next()).await.unwrap();
    assert_eq!(w.store.quota_used(&w.tenant, month.next()).await.unwrap(), 0);
    w.store.uncount_quota_read(&w.tenant, month.next().next()).await.unwrap();
    // Exact under concurrency.
    let calls = (0..30).map(|_| w.store.count_quota_read(&other, month.next(), 12));
    let got: Vec<bool> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(got.iter().filter(|c| **c).count(), 12);
    assert_eq!(w.store.quota_used(&other, month.next()).await.unwrap(), 12);
}

pub async fn expiry_notices_are_claimed_once_seven_days_before_expiry(store: Subject) {
    let w = world(store).await;
    let day = 86_400;
    // Lives 30 days: due at day 23. Lives 3 days: never noticed.
    let long = w.child(&w.root, T0, 30 * day);
    let short = w.child(&w.root, T0, 3 * day);
    let revoked = w.child(&w.root, T0, 30 * day);
    for t in [&long, &short, &revoked] {
        w.store.create_token(t, &w.event(AuditAction::TokenCreate, T0)).await.unwrap();
    }
    assert_eq!(long.notice_second(), Some(T0.seconds() + 23 * day));
    assert_eq!(short.notice_second(), None);
    w.revoke(&revoked.token_id, T0.plus_seconds(day), 30 * day).await.unwrap();
    let at = |d: i64| T0.plus_seconds(d * day);
    assert!(w.store.claim_expiry_notices(at(22)).await.unwrap().is_empty(), "not due yet");
    let got = w.store.claim_expiry_notices(at(23)).await.unwrap();
    assert_eq!(got.len(), 1, "the revoked token is not noticed, the short one never: {got:?}");
    assert_eq!(
        got[0],
        ExpiryNotice {
            token_id: long.token_id.clone(),
            name: long.name.clone(),
            tenant_id: w.tenant.clone(),
            expires_at: long.grant.expires_at
        }
    );
    assert!(w.store.claim_expiry_notices(at(24)).await.unwrap().is_empty(), "once, not daily");
    // Put back (its send failed): claimed again on the next run, once.
    w.store.release_expiry_notice(&long.token_id, long.notice_second().unwrap()).await.unwrap();
    assert_eq!(w.store.claim_expiry_notices(at(24)).await.unwrap().len(), 1);
    assert!(w.store.claim_expiry_notices(at(25)).await.unwrap().is_empty());
    // The root token (a year) is due 7 days before its expiry.
    let root_due = Timestamp::from_millis(w.root.notice_second().unwrap() * 1000);
    let got = w.store.claim_expiry_notices(root_due).await.unwrap();
    assert_eq!(got.iter().map(|n| &n.token_id).collect::<Vec<_>>(), [&w.root.token_id]);
    assert!(w.actions().await.iter().all(|a| *a == AuditAction::TokenCreate), "notices write no event");
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
            delete_key_removes_it_once,
            list_keys_pages_oldest_first_within_the_tenant,
            record_read_counts_on_the_key_and_the_token,
            record_read_of_a_vanished_key_or_token_leaves_nothing,
            unrecord_read_takes_back_counts_and_event_never_below_zero,
            expected_read_is_recorded_only_while_every_expectation_holds,
            expected_read_follows_the_tenant_setting,
            expected_read_needs_a_live_token,
            create_token_records_the_child_for_its_issuer,
            create_token_never_overwrites,
            create_token_needs_a_live_issuer,
            revoke_keeps_the_first_revocation,
            purge_follows_the_purge_rule,
            a_purged_child_leaves_its_issuer,
            list_tokens_pages_oldest_first,
            audit_lists_newest_first_with_cursors,
            count_request_stops_at_the_limit_per_token_and_minute,
            count_request_is_exact_under_concurrency,
            quota_is_set_on_the_tenant_and_removed,
            quota_counts_stop_at_the_quota_per_tenant_and_month,
            expiry_notices_are_claimed_once_seven_days_before_expiry,
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

    crate::store_contract_tests!(async { Arc::new(MemoryStore::new()) as crate::store::contract::Subject });
}
