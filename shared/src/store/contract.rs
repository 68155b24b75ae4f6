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

mod identities;
pub use identities::*;

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
    AuditEvent {
        tenant_id: Some(tenant.clone()),
        at,
        request_id: crate::ids::new_request_id(),
        action,
        token_id: None,
        key_id: None,
        version: None,
        environment: None,
        effective_mode: None,
        outcome: Outcome::Ok,
        source_ip: None,
        user_agent: None,
        actor: None,
        identity_id: None,
        detail: None,
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
            ..Fetch::default()
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
    let v2 = version(2, t1);
    let change = key.rotation(v2.clone(), 0, t1);
    w.store.update_key(&w.tenant, &key.key_id, &change, t1, &w.event(AuditAction::KeyRotate, t1)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((&got.current, got.previous.as_ref(), got.updated_at), (&v2, None, t1));
    assert_eq!(got.name, "k", "a value change keeps the metadata");
    let t2 = T0.plus_seconds(9);
    let overrides = ModeOverrides::from([(Environment::Production, Mode::Mock)]);
    let change = KeyChange::Meta { name: "renamed".into(), mode_overrides: overrides.clone() };
    w.store.update_key(&w.tenant, &key.key_id, &change, t2, &w.event(AuditAction::KeyUpdate, t2)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((got.name.as_str(), &got.mode_overrides, got.updated_at), ("renamed", &overrides, t2));
    assert_eq!(got.current, v2, "a metadata change keeps the value");
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
        w.store
            .record_read(&key.key_id, &w.root.token_id, t1, &w.read_event(&key.key_id, &w.root.token_id, t1))
            .await
            .unwrap();
    }
    let k = w.get_key(&key.key_id).await.unwrap();
    let t = w.token(&w.root.token_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (3, Some(t1)));
    assert_eq!((t.uses, t.last_used_at), (3, Some(t1)));
    assert_eq!(w.actions().await.iter().filter(|a| **a == AuditAction::KeyRead).count(), 3);
}

/// A read of a key or token deleted meanwhile: its event stays (the read
/// was served), and nothing is stored for the one that is gone.
pub async fn record_read_of_a_vanished_key_or_token_stores_nothing_for_it(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let gone_token = ParsedToken::generate().id().clone();
    w.store.record_read(&key.key_id, &gone_token, T0, &w.read_event(&key.key_id, &gone_token, T0)).await.unwrap();
    let gone_key = KeyId::generate(&w.tenant);
    w.store.record_read(&gone_key, &w.root.token_id, T0, &w.read_event(&gone_key, &w.root.token_id, T0)).await.unwrap();
    let k = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (1, Some(T0)), "the key that is there counts");
    assert_eq!(w.token(&w.root.token_id).await.unwrap().uses, 1, "the token that is there counts");
    assert!(w.token(&gone_token).await.is_none(), "no stub of the token that is gone");
    assert!(w.get_key(&gone_key).await.is_none(), "no stub of the key that is gone");
}

pub async fn unrecord_read_takes_back_counts_and_event_never_below_zero(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    let read = w.read_event(&key.key_id, &w.root.token_id, T0);
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
        ("envelope", Box::new(|e| e.envelope = Some(Envelope { nonce: [8; 12], ..key.current.envelope.clone() }))),
        ("version", Box::new(|e| e.version.number = 2)),
        ("stage", Box::new(|e| e.version.stage = Stage::Previous)),
        ("other key", Box::new(|e| e.key_id = KeyId::generate(&e.tenant_id))),
        ("other token", Box::new(|e| e.token_id = ParsedToken::generate().id().clone())),
    ];
    for (what, break_it) in &broken {
        let mut e = holds.clone();
        break_it(&mut e);
        assert!(
            !w.store.record_expected_read(&e, T0, &w.read_event(&key.key_id, &w.root.token_id, T0)).await.unwrap(),
            "{what}"
        );
    }
    assert_eq!(w.actions().await, vec![AuditAction::KeyCreate], "no event for a plan that failed");
    let staging = ExpectedRead {
        environment: Environment::Staging,
        mode: Mode::Live,
        source: Source::KeyOverride,
        ..holds.clone()
    };
    let live = ExpectedRead { envelope: Some(key.current.envelope.clone()), ..staging.clone() };
    let guarded = ExpectedRead { mode: Mode::Live, source: Source::Guardrail, ..holds.clone() };
    let t1 = T0.plus_seconds(1);
    for e in [&holds, &staging, &live, &guarded] {
        assert!(w.store.record_expected_read(e, t1, &w.read_event(&key.key_id, &w.root.token_id, t1)).await.unwrap());
    }
    let k = w.get_key(&key.key_id).await.unwrap();
    let t = w.token(&w.root.token_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (4, Some(t1)), "only the reads whose expectations held");
    assert_eq!((t.uses, t.last_used_at), (4, Some(t1)));
    assert_eq!(w.audit().await.len(), 5, "the key's creation and four reads");
    // A retry of a write that landed (the same event) is recognised as done
    // and counts nothing more.
    let again = w.read_event(&key.key_id, &w.root.token_id, t1);
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
    assert!(w.store.record_expected_read(&holds, T0, &w.read_event(&key.key_id, &w.root.token_id, T0)).await.unwrap());
    w.store
        .update_modes(&w.tenant, &[(Environment::Development, Mode::Live)], &w.event(AuditAction::SettingsUpdate, T0))
        .await
        .unwrap();
    assert!(!w.store.record_expected_read(&holds, T0, &w.read_event(&key.key_id, &w.root.token_id, T0)).await.unwrap());
    let live = ExpectedRead { mode: Mode::Live, ..holds };
    assert!(w.store.record_expected_read(&live, T0, &w.read_event(&key.key_id, &w.root.token_id, T0)).await.unwrap());
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
        .record_expected_read(&holds, just_before, &w.read_event(&key.key_id, &w.root.token_id, just_before))
        .await
        .unwrap());
    assert!(
        !w.store
            .record_expected_read(&holds, expiry, &w.read_event(&key.key_id, &w.root.token_id, expiry))
            .await
            .unwrap(),
        "expired"
    );
    w.revoke(&w.root.token_id, T0, 60).await.unwrap();
    assert!(
        !w.store.record_expected_read(&holds, T0, &w.read_event(&key.key_id, &w.root.token_id, T0)).await.unwrap(),
        "revoked"
    );
    assert_eq!(w.get_key(&key.key_id).await.unwrap().retrievals, 1);
}

/// An event retracted is gone, and only it; retracting a gone one is fine.
pub async fn retract_event_removes_that_event_only(store: Subject) {
    let w = world(store).await;
    let keep = w.event(AuditAction::TokenRevoke, T0);
    let gone = w.event(AuditAction::TokenRevoke, T0);
    w.store.append_audit(&keep).await.unwrap();
    w.store.append_audit(&gone).await.unwrap();
    w.store.retract_event(&gone).await.unwrap();
    w.store.retract_event(&gone).await.unwrap();
    let left: Vec<String> = w.audit().await.into_iter().map(|e| e.request_id).collect();
    assert_eq!(left, vec![keep.request_id.clone()]);
}

// ------------------------------------------------------------ usage

/// Batches of the audit stream add exactly what they hold: a redelivery
/// (the same batch id, perhaps longer) adds only what did not land; a read
/// taken back counts −1; a key gone keeps only its daily counts.
pub async fn apply_usage_is_exact_under_redelivery(store: Subject) {
    use crate::usage::{CountedRead, DailyCount, Day, SeqNo, Subject as Of, UsageBatch};
    let w = world(store).await;
    let key = w.key("k", T0);
    let gone = w.key("gone", T0);
    for k in [&key, &gone] {
        w.store.create_key(k, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    }
    let day2 = T0.plus_seconds(86_400);
    let read = |seq: u32, k: &KeyRecord, at: Timestamp, delta: i64| CountedRead {
        seq: SeqNo(format!("{seq:021}")),
        tenant_id: w.tenant.clone(),
        key_id: k.key_id.clone(),
        token_id: w.root.token_id.clone(),
        at,
        delta,
    };
    let first = vec![read(1, &key, T0, 1), read(2, &key, T0, 1), read(3, &gone, T0, 1)];
    let batch = UsageBatch {
        id: format!("b-{}", crate::ids::random_base62(8)),
        last_seq: SeqNo(format!("{:021}", 4)),
        reads: first.clone(),
    };
    w.store.apply_usage(&batch, T0).await.unwrap();
    w.store.apply_usage(&batch, T0).await.unwrap();
    let k = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (2, Some(T0)), "a redelivered batch counts once");
    // Redelivered, longer: a read the next day, one taken back, and the
    // other key deleted meanwhile.
    w.store.delete_key(&w.tenant, &gone.key_id, &w.event(AuditAction::KeyDelete, T0)).await.unwrap();
    let mut longer = first;
    longer.extend([read(5, &key, day2, 1), read(6, &key, T0, -1), read(7, &gone, day2, 1)]);
    let again = UsageBatch { last_seq: SeqNo(format!("{:021}", 8)), reads: longer, ..batch.clone() };
    w.store.apply_usage(&again, day2).await.unwrap();
    w.store.apply_usage(&again, day2).await.unwrap();
    let k = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((k.retrievals, k.last_used_at), (2, Some(day2)), "+1 and −1 once; a take-back never moves lastUsedAt");
    let t = w.token(&w.root.token_id).await.unwrap();
    assert_eq!((t.uses, t.last_used_at), (4, Some(day2)), "the token counts every read of both keys");
    assert!(w.get_key(&gone.key_id).await.is_none(), "no stub of the deleted key");
    let mut daily = w.store.daily_usage(&w.tenant, Day::of(T0), Day::of(day2)).await.unwrap();
    daily.sort_by(|a, b| (a.day, &a.subject).cmp(&(b.day, &b.subject)));
    let d = |at: Timestamp, of: Of, reads: u64| DailyCount { day: Day::of(at), subject: of, reads };
    let (kk, gk, tk) = (Of::Key(key.key_id.clone()), Of::Key(gone.key_id.clone()), Of::Token(w.root.token_id.clone()));
    let mut want = vec![
        d(T0, kk.clone(), 1),
        d(T0, gk.clone(), 1),
        d(T0, tk.clone(), 2),
        d(day2, kk, 1),
        d(day2, gk, 1),
        d(day2, tk, 2),
    ];
    want.sort_by(|a, b| (a.day, &a.subject).cmp(&(b.day, &b.subject)));
    assert_eq!(daily, want, "daily counts, the deleted key's included");
    let only_day2 = w.store.daily_usage(&w.tenant, Day::of(day2), Day::of(day2)).await.unwrap();
    assert_eq!(only_day2.len(), 3, "the range bounds the days");
    let other = TenantId::generate();
    assert!(
        w.store.daily_usage(&other, Day::of(T0), Day::of(day2)).await.unwrap().is_empty(),
        "another tenant sees none"
    );
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

/// A new current version keeps the old one as previous for its window; a
/// pending one waits beside it; a promotion makes it current. Each write
/// lands only on the versions it was computed from, with its event.
pub async fn versions_rotate_stage_and_promote(store: Subject) {
    let w = world(store).await;
    let key = w.key("k", T0);
    w.store.create_key(&key, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
    // v2 current, v1 previous for an hour.
    let t1 = T0.plus_seconds(10);
    let rotate = key.rotation(version(key.next_version(), t1), 3600, t1);
    w.store.update_key(&w.tenant, &key.key_id, &rotate, t1, &w.event(AuditAction::KeyRotate, t1)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!((got.current.number, got.last_version), (2, 2));
    let previous = got.previous.clone().expect("v1 kept as previous");
    assert_eq!(
        (previous.number, previous.retires_at, &previous.envelope),
        (1, Some(t1.plus_seconds(3600)), &key.current.envelope)
    );
    // The same change again was computed from versions that are gone: a
    // conflict, with no event; a retry of the change that landed is done.
    let stale = key.rotation(version(2, t1), 0, t1);
    let r = w.store.update_key(&w.tenant, &key.key_id, &stale, t1, &w.event(AuditAction::KeyRotate, t1)).await;
    assert_conflict(r, Conflict::Changed, "a change from stale versions");
    w.store.update_key(&w.tenant, &key.key_id, &rotate, t1, &w.event(AuditAction::KeyRotate, t1)).await.unwrap();
    assert_eq!(w.get_key(&key.key_id).await.unwrap(), got, "a retry of a landed change changes nothing");
    // v3 pending, then v4 pending: v3 is destroyed; current and previous stay.
    let t2 = T0.plus_seconds(20);
    let stage3 = got.staging(version(got.next_version(), t2));
    w.store.update_key(&w.tenant, &key.key_id, &stage3, t2, &w.event(AuditAction::KeyRotate, t2)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!(got.pending.as_ref().map(|v| v.number), Some(3));
    let stage4 = got.staging(version(got.next_version(), t2));
    w.store.update_key(&w.tenant, &key.key_id, &stage4, t2, &w.event(AuditAction::KeyRotate, t2)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!(
        (
            got.current.number,
            got.previous.as_ref().map(|v| v.number),
            got.pending.as_ref().map(|v| v.number),
            got.last_version
        ),
        (2, Some(1), Some(4), 4)
    );
    // Promote v4 with no window: v2 is destroyed at once, and so is v1.
    let t3 = T0.plus_seconds(30);
    let promote = got.promotion(0, t3).expect("a pending version");
    w.store.update_key(&w.tenant, &key.key_id, &promote, t3, &w.event(AuditAction::KeyPromote, t3)).await.unwrap();
    let got = w.get_key(&key.key_id).await.unwrap();
    assert_eq!(
        (got.current.number, got.previous.is_none(), got.pending.is_none(), got.last_version),
        (4, true, true, 4)
    );
    assert_eq!(got.current.envelope, stage4_envelope(&stage4), "the pending envelope, now current");
    assert!(got.promotion(0, t3).is_none(), "nothing left to promote");
    assert_eq!(got.next_version(), 5, "numbers are never reused");
    let actions = w.actions().await;
    assert_eq!(actions.iter().filter(|a| **a == AuditAction::KeyRotate).count(), 3, "{actions:?}");
    assert_eq!(actions[0], AuditAction::KeyPromote);
    // Another tenant's key is not found.
    let other = TenantId::generate();
    let r = w
        .store
        .update_key(
            &other,
            &key.key_id,
            &got.staging(version(5, t3)),
            t3,
            &event_in(&other, AuditAction::KeyRotate, t3),
        )
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
}

fn stage4_envelope(change: &KeyChange) -> Envelope {
    match change {
        KeyChange::Versions { pending: Slot::Set(v), .. } => v.envelope.clone(),
        _ => unreachable!(),
    }
}

/// Cleanup destroys a previous version once its window has closed (whole
/// seconds, never before), and nothing else.
pub async fn retire_versions_destroys_due_previous_versions_only(store: Subject) {
    let w = world(store).await;
    let (short, long) = (w.key("short", T0), w.key("long", T0));
    for (k, window) in [(&short, 10), (&long, 100)] {
        w.store.create_key(k, &w.event(AuditAction::KeyCreate, T0)).await.unwrap();
        let change = k.rotation(version(2, T0), window, T0);
        w.store.update_key(&w.tenant, &k.key_id, &change, T0, &w.event(AuditAction::KeyRotate, T0)).await.unwrap();
    }
    let report = w.store.retire_versions(T0.plus_millis(9_999)).await.unwrap();
    assert_eq!((report.items_read, report.deleted), (0, 0), "not yet due");
    let got = w.get_key(&short.key_id).await.unwrap();
    assert_eq!(
        got.versions(T0.plus_seconds(10)).iter().map(|(v, s)| (v.number, *s)).collect::<Vec<_>>(),
        vec![(2, Stage::Current), (1, Stage::Retired)]
    );
    let report = w.store.retire_versions(T0.plus_seconds(10)).await.unwrap();
    assert_eq!((report.items_read, report.deleted), (1, 1));
    let got = w.get_key(&short.key_id).await.unwrap();
    assert!(got.previous.is_none(), "destroyed");
    assert_eq!(got.current.number, 2, "the current version stays");
    assert!(w.get_key(&long.key_id).await.unwrap().previous.is_some(), "a window still open");
    let report = w.store.retire_versions(T0.plus_seconds(10)).await.unwrap();
    assert_eq!((report.items_read, report.deleted), (0, 0), "nothing twice");
    let report = w.store.retire_versions(T0.plus_seconds(100)).await.unwrap();
    assert_eq!(report.deleted, 1);
}

/// A planned read of a previous or pending version holds only while that
/// version stands where it stood and is readable.
pub async fn expected_read_follows_the_version(store: Subject) {
    let w = world(store).await;
    let (key, got) = w.three_versions().await;
    let plan = |number, stage, envelope: &Envelope| ExpectedRead {
        version: PlannedVersion { number, stage },
        envelope: Some(envelope.clone()),
        ..w.expect_read(&got)
    };
    let previous = plan(1, Stage::Previous, &key.current.envelope);
    let current = plan(2, Stage::Current, &got.current.envelope);
    let pending = plan(3, Stage::Pending, &got.pending.as_ref().unwrap().envelope);
    let t = T0.plus_seconds(1);
    for e in [&previous, &current, &pending] {
        assert!(
            w.store.record_expected_read(e, t, &w.read_event(&key.key_id, &w.root.token_id, t)).await.unwrap(),
            "{:?}",
            e.version
        );
    }
    let wrong = [
        plan(1, Stage::Current, &key.current.envelope),
        plan(2, Stage::Previous, &got.current.envelope),
        plan(3, Stage::Current, &got.pending.as_ref().unwrap().envelope),
        plan(1, Stage::Previous, &got.current.envelope),
    ];
    for e in &wrong {
        assert!(
            !w.store.record_expected_read(e, t, &w.read_event(&key.key_id, &w.root.token_id, t)).await.unwrap(),
            "{:?}",
            e.version
        );
    }
    // Past its window the previous version is not served, even before
    // cleanup destroys it.
    let late = T0.plus_seconds(60);
    assert!(!w
        .store
        .record_expected_read(&previous, late, &w.read_event(&key.key_id, &w.root.token_id, late))
        .await
        .unwrap());
    // Promoted: the pending plan and the current plan both fail.
    let promote = got.promotion(0, late).unwrap();
    w.store.update_key(&w.tenant, &key.key_id, &promote, late, &w.event(AuditAction::KeyPromote, late)).await.unwrap();
    for e in [&current, &pending] {
        assert!(
            !w.store.record_expected_read(e, late, &w.read_event(&key.key_id, &w.root.token_id, late)).await.unwrap(),
            "{:?}",
            e.version
        );
    }
    let promoted = ExpectedRead { version: PlannedVersion { number: 3, stage: Stage::Current }, ..pending.clone() };
    assert!(w
        .store
        .record_expected_read(&promoted, late, &w.read_event(&key.key_id, &w.root.token_id, late))
        .await
        .unwrap());
    assert_eq!(w.get_key(&key.key_id).await.unwrap().retrievals, 4);
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
            count_request_stops_at_the_limit_per_token_and_minute,
            count_request_is_exact_under_concurrency,
            quota_is_set_on_the_tenant_and_removed,
            quota_counts_stop_at_the_quota_per_tenant_and_month,
            expiry_notices_are_claimed_once_seven_days_before_expiry,
            identities_are_created_once_by_a_live_creator,
            an_exchange_writes_its_token_under_creator_and_identity_and_claims_its_jti_once,
            deleting_an_identity_marks_it_once_and_answers_its_tokens,
            list_identities_pages_oldest_first_within_the_tenant,
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
