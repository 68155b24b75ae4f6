//! An in-memory store: the local development server's backend (optionally
//! saved to a file after each write) and the fast unit tests'. It honours the
//! same conditions as the DynamoDB adapter.

mod identities;

use super::*;
use crate::envelope::Envelope;
use crate::fault::{Fault, FaultKind};
use crate::token::Scopes;
use crate::usage::{Count, DailyCount, Day, SeqNo, Subject as UsageSubject, Tally, UsageBatch};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Default)]
struct State {
    tokens: BTreeMap<TokenId, TokenRecord>,
    children: BTreeMap<TokenId, BTreeSet<TokenId>>,
    keys: BTreeMap<KeyId, KeyRecord>,
    tenants: BTreeMap<TenantId, TenantRecord>,
    /// Per tenant, by (at, event id): the DynamoDB adapter's order.
    audit: BTreeMap<TenantId, BTreeMap<(i64, String), AuditEvent>>,
    /// Purge seconds (whole seconds, rounded up, as in DynamoDB).
    purge_at: BTreeMap<TokenId, i64>,
    /// Reads per tenant, day and key or token (`GET /usage/daily`).
    daily: BTreeMap<(TenantId, Day, UsageSubject), u64>,
    /// How far each usage batch was applied ([`Store::apply_usage`]).
    batches: BTreeMap<String, SeqNo>,
    /// Expiry notices still to send, by the second they are due.
    notice_at: BTreeMap<TokenId, i64>,
    /// Value reads counted against a tenant's quota, per UTC month.
    quota_used: BTreeMap<(TenantId, Month), u64>,
    /// The identities aggregate (`identities.rs`).
    identities: identities::Identities,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    file: Option<PathBuf>,
    /// Requests per (token, UTC minute): not saved to the data file (a
    /// minute's count outlives no restart worth keeping it for).
    rate: Mutex<HashMap<(TokenId, i64), u32>>,
}

/// Rate counters kept before the older minutes are dropped.
const RATE_COUNTERS_KEPT: usize = 4096;

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("file", &self.file).finish_non_exhaustive()
    }
}

fn encode_cursor(tenant: &TenantId, pos: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{tenant}\n{pos}"))
}

fn decode_cursor(tenant: &TenantId, cursor: Option<&str>) -> Result<Option<String>, StoreError> {
    let Some(c) = cursor else { return Ok(None) };
    let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| StoreError::BadCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| StoreError::BadCursor)?;
    let (t, pos) = text.split_once('\n').ok_or(StoreError::BadCursor)?;
    if t != tenant.as_str() {
        return Err(StoreError::BadCursor);
    }
    Ok(Some(pos.to_owned()))
}

/// Pages over `(sort key, item)` pairs already in order.
fn page<T: Clone>(
    tenant: &TenantId,
    items: impl Iterator<Item = (String, T)>,
    limit: usize,
    after: Option<String>,
) -> Page<T> {
    let mut out = Vec::new();
    let mut last = None;
    let mut more = false;
    for (pos, item) in items.skip_while(|(pos, _)| after.as_ref().is_some_and(|a| pos <= a)) {
        if out.len() == limit {
            more = true;
            break;
        }
        last = Some(pos);
        out.push(item);
    }
    Page { items: out, next: if more { last.map(|p| encode_cursor(tenant, &p)) } else { None } }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs a write. `f` checks every condition before it changes anything,
    /// so a refused write leaves the state as it was; the data file is saved
    /// after a write that changed something.
    fn with<R>(&self, f: impl FnOnce(&mut State) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut state = self.lock()?;
        let out = f(&mut state)?;
        if let Some(path) = &self.file {
            persist::save(path, &state).map_err(|e| {
                StoreError::Internal(Fault::new(FaultKind::Local, "saving the data file").with_source(e))
            })?;
        }
        Ok(out)
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> Result<R, StoreError> {
        let state = self.lock()?;
        Ok(f(&state))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| StoreError::internal(FaultKind::Local, "store lock poisoned"))
    }

    /// A store saved to `dir/store.json` after every write and loaded from it
    /// at start, so that a development server survives a restart.
    pub fn open_dir(dir: &std::path::Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file = dir.join("store.json");
        let state = match std::fs::read(&file) {
            Ok(bytes) => persist::load(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        Ok(Self { state: Mutex::new(state), file: Some(file), rate: Mutex::default() })
    }

    /// Every tenant id, oldest first (the dev server reuses its tenant).
    pub fn tenants(&self) -> Vec<TenantRecord> {
        self.read(|s| {
            let mut t: Vec<_> = s.tenants.values().cloned().collect();
            t.sort_by_key(|t| t.created_at);
            t
        })
        .unwrap_or_default()
    }
}

/// Whether `token` is stored already: `Ok(true)` for a retry of this very
/// write (its verifier), `Conflict::Exists` for another token's id.
fn token_landed(s: &State, token: &TokenRecord) -> Result<bool, StoreError> {
    match s.tokens.get(&token.token_id) {
        Some(existing) if existing.verifier == token.verifier => Ok(true),
        Some(_) => Err(StoreError::Conflict(Conflict::Exists)),
        None => Ok(false),
    }
}

/// A new token's issuer, if it has one, must be live as it is created.
fn check_issuer(s: &State, token: &TokenRecord) -> Result<(), StoreError> {
    match &token.issued_by {
        Some(parent) if !s.tokens.get(parent).is_some_and(|p| p.is_live(token.created_at)) => {
            Err(StoreError::Conflict(Conflict::IssuerNotLive))
        }
        _ => Ok(()),
    }
}

/// Stores a new token, entered under its issuer (checked first).
fn insert_token(s: &mut State, token: &TokenRecord) {
    if let Some(parent) = &token.issued_by {
        s.children.entry(parent.clone()).or_default().insert(token.token_id.clone());
    }
    s.purge_at.insert(token.token_id.clone(), token.grant.expires_at.ceil_seconds());
    if let Some(at) = token.notice_second() {
        s.notice_at.insert(token.token_id.clone(), at);
    }
    s.tokens.insert(token.token_id.clone(), token.clone());
}

fn push_audit(s: &mut State, e: &AuditEvent) {
    let Some(tenant) = e.tenant_id.clone() else { return };
    s.audit.entry(tenant).or_default().insert((e.at.millis(), e.event_id.clone()), e.clone());
}

/// The sort position of an event in a newest-first listing: both parts
/// inverted, so that the position grows along the page.
fn audit_position(at: i64, event_id: &str) -> String {
    let inverted: String = event_id.bytes().map(|b| format!("{:02x}", 255 - b)).collect();
    format!("{:020}{inverted}", i64::MAX - at)
}

/// Counts one read (or, with `delta` −1, takes one back) on the key, the
/// token and their day; a key or token no longer stored keeps only its
/// daily count.
fn count_read(s: &mut State, tenant: &TenantId, key: &KeyId, token: &TokenId, at: Timestamp, delta: i64) {
    let mut tally = Tally::default();
    tally.add(&crate::usage::CountedRead {
        seq: SeqNo(String::new()),
        tenant_id: tenant.clone(),
        key_id: key.clone(),
        token_id: token.clone(),
        at,
        delta,
    });
    add_tally(s, &tally);
}

fn add_count(n: &mut u64, last: &mut Option<Timestamp>, c: &Count) {
    *n = n.saturating_add_signed(c.n);
    *last = (*last).max(c.last_at);
}

fn add_tally(s: &mut State, tally: &Tally) {
    for (id, c) in &tally.keys {
        if let Some(k) = s.keys.get_mut(id) {
            add_count(&mut k.retrievals, &mut k.last_used_at, c);
        }
    }
    for (id, c) in &tally.tokens {
        if let Some(t) = s.tokens.get_mut(id) {
            add_count(&mut t.uses, &mut t.last_used_at, c);
        }
    }
    for (k, n) in &tally.daily {
        let e = s.daily.entry(k.clone()).or_default();
        *e = e.saturating_add_signed(*n);
    }
}

fn key_in_tenant<'a>(s: &'a mut State, tenant: &TenantId, key: &KeyId) -> Result<&'a mut KeyRecord, StoreError> {
    s.keys.get_mut(key).filter(|k| &k.tenant_id == tenant).ok_or(StoreError::NotFound)
}

#[async_trait]
impl Store for MemoryStore {
    async fn fetch(&self, want: &Fetch) -> Result<Fetched, StoreError> {
        self.read(|s| Fetched {
            tokens: want.tokens.iter().filter_map(|id| s.tokens.get(id).map(|t| (id.clone(), t.clone()))).collect(),
            keys: want.keys.iter().filter_map(|id| s.keys.get(id).map(|k| (id.clone(), k.clone()))).collect(),
            tenant: want.tenant.as_ref().and_then(|t| s.tenants.get(t).cloned()),
        })
    }

    async fn create_tenant(&self, tenant: &TenantRecord, root: &TokenRecord) -> Result<(), StoreError> {
        self.with(|s| {
            if s.tenants.contains_key(&tenant.tenant_id) || s.tokens.contains_key(&root.token_id) {
                return Err(StoreError::Conflict(Conflict::Exists));
            }
            s.tenants.insert(tenant.tenant_id.clone(), tenant.clone());
            s.purge_at.insert(root.token_id.clone(), root.grant.expires_at.ceil_seconds());
            if let Some(at) = root.notice_second() {
                s.notice_at.insert(root.token_id.clone(), at);
            }
            s.tokens.insert(root.token_id.clone(), root.clone());
            Ok(())
        })
    }

    async fn update_modes(
        &self,
        tenant: &TenantId,
        changes: &[(Environment, Mode)],
        audit: &AuditEvent,
    ) -> Result<TenantModes, StoreError> {
        self.with(|s| {
            let t = s.tenants.get_mut(tenant).ok_or(StoreError::NotFound)?;
            for (env, mode) in changes {
                t.modes.set(*env, *mode);
            }
            let modes = t.modes;
            if !changes.is_empty() {
                push_audit(s, audit);
            }
            Ok(modes)
        })
    }

    async fn create_key(&self, key: &KeyRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(existing) = s.keys.get(&key.key_id) {
                // A retry of this very write (its ciphertext) has landed.
                if existing.current.envelope.ciphertext == key.current.envelope.ciphertext {
                    return Ok(());
                }
                return Err(StoreError::Conflict(Conflict::Exists));
            }
            s.keys.insert(key.key_id.clone(), key.clone());
            push_audit(s, audit);
            Ok(())
        })
    }

    async fn update_key(
        &self,
        tenant: &TenantId,
        key: &KeyId,
        change: &KeyChange,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            let k = key_in_tenant(s, tenant, key)?;
            match change {
                KeyChange::Versions { expect, .. } => {
                    let found = (k.current.number, k.last_version, k.pending.as_ref().map(|v| v.number));
                    if found != (expect.current, expect.last, expect.pending) {
                        // A retry of this very change that landed.
                        let landed = k.shows(change);
                        return if landed { Ok(()) } else { Err(StoreError::Conflict(Conflict::Changed)) };
                    }
                    k.apply_versions(change);
                }
                KeyChange::Meta { name, mode_overrides } => {
                    k.name = name.clone();
                    k.mode_overrides = mode_overrides.clone();
                }
            }
            k.updated_at = at;
            push_audit(s, audit);
            Ok(())
        })
    }

    async fn delete_key(&self, tenant: &TenantId, key: &KeyId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            // Already gone (a concurrent delete, or a retry of this one) is
            // deleted, and its deletion wrote the event.
            if s.keys.contains_key(key) {
                key_in_tenant(s, tenant, key)?;
                s.keys.remove(key);
                push_audit(s, audit);
            }
            Ok(())
        })
    }

    async fn record_read(
        &self,
        key: &KeyId,
        token: &TokenId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(tenant) = audit.tenant_id.clone() {
                count_read(s, &tenant, key, token, at, 1);
            }
            push_audit(s, audit);
            Ok(())
        })
    }

    async fn record_expected_read(
        &self,
        expect: &ExpectedRead,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.with(|s| {
            let modes = s.tenants.get(&expect.tenant_id).map(|t| t.modes).unwrap_or_default();
            if !expect.holds(s.tokens.get(&expect.token_id), s.keys.get(&expect.key_id), &modes, at) {
                return Ok(false);
            }
            // A retry of a write that landed finds its own event.
            let landed = s
                .audit
                .get(&expect.tenant_id)
                .is_some_and(|m| m.contains_key(&(audit.at.millis(), audit.event_id.clone())));
            if landed {
                return Ok(true);
            }
            count_read(s, &expect.tenant_id, &expect.key_id, &expect.token_id, at, 1);
            push_audit(s, audit);
            Ok(true)
        })
    }

    async fn unrecord_read(&self, key: &KeyId, token: &TokenId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            let Some(tenant) = audit.tenant_id.clone() else { return Ok(()) };
            let stored = s.audit.get_mut(&tenant).and_then(|m| m.remove(&(audit.at.millis(), audit.event_id.clone())));
            // Only a read whose event was stored was counted.
            if stored.is_some() {
                count_read(s, &tenant, key, token, audit.at, -1);
            }
            Ok(())
        })
    }

    async fn apply_usage(&self, batch: &UsageBatch, _now: Timestamp) -> Result<(), StoreError> {
        self.with(|s| {
            let done = s.batches.get(&batch.id).cloned();
            let fresh: Vec<_> =
                batch.reads.iter().filter(|r| done.as_ref().is_none_or(|d| r.seq > *d)).cloned().collect();
            let mut tally = Tally::default();
            for r in &fresh {
                tally.add(r);
            }
            add_tally(s, &tally);
            s.batches.insert(batch.id.clone(), batch.last_seq.clone());
            Ok(())
        })
    }

    async fn daily_usage(&self, tenant: &TenantId, from: Day, to: Day) -> Result<Vec<DailyCount>, StoreError> {
        self.read(|s| {
            s.daily
                .iter()
                .filter(|((t, day, _), n)| t == tenant && (from..=to).contains(day) && **n > 0)
                .map(|((_, day, subject), n)| DailyCount { day: *day, subject: subject.clone(), reads: *n })
                .collect()
        })
    }

    async fn create_token(&self, token: &TokenRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            if token_landed(s, token)? {
                return Ok(());
            }
            check_issuer(s, token)?;
            insert_token(s, token);
            push_audit(s, audit);
            Ok(())
        })
    }

    async fn revoke_token(
        &self,
        tenant: &TenantId,
        token: &Revocable,
        at: Timestamp,
        revoked_grace_seconds: i64,
    ) -> Result<Vec<Revocable>, StoreError> {
        let token = &token.token_id;
        self.with(|s| {
            let t = s.tokens.get_mut(token).filter(|t| &t.tenant_id == tenant).ok_or(StoreError::NotFound)?;
            t.revoked_at.get_or_insert(at);
            let purge = t.purge_second(revoked_grace_seconds);
            s.purge_at.insert(token.clone(), purge);
            let children = s.children.get(token).into_iter().flatten();
            Ok(children
                .map(|c| Revocable { token_id: c.clone(), expires_at: s.tokens.get(c).map(|t| t.grant.expires_at) })
                .collect())
        })
    }

    async fn list_keys(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<KeyRecord>, StoreError> {
        let after = decode_cursor(tenant, cursor)?;
        self.read(|s| {
            let mut keys: Vec<_> = s.keys.values().filter(|k| &k.tenant_id == tenant).collect();
            keys.sort_by_key(|k| (k.created_at, k.key_id.clone()));
            let items = keys.into_iter().map(|k| (format!("{:020}{}", k.created_at.millis(), k.key_id), k.clone()));
            page(tenant, items, limit, after)
        })
    }

    async fn list_tokens(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<TokenRecord>, StoreError> {
        let after = decode_cursor(tenant, cursor)?;
        self.read(|s| {
            let mut tokens: Vec<_> = s.tokens.values().filter(|t| &t.tenant_id == tenant).collect();
            tokens.sort_by_key(|t| (t.created_at, t.token_id.clone()));
            let items = tokens.into_iter().map(|t| (format!("{:020}{}", t.created_at.millis(), t.token_id), t.clone()));
            page(tenant, items, limit, after)
        })
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            push_audit(s, event);
            Ok(())
        })
    }

    async fn retract_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(events) = event.tenant_id.as_ref().and_then(|t| s.audit.get_mut(t)) {
                events.remove(&(event.at.millis(), event.event_id.clone()));
            }
            Ok(())
        })
    }

    async fn list_audit(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let after = decode_cursor(tenant, cursor)?;
        self.read(|s| {
            let events = s
                .audit
                .get(tenant)
                .into_iter()
                .flat_map(|m| m.iter().rev())
                .map(|((at, id), e)| (audit_position(*at, id), e.clone()));
            page(tenant, events, limit, after)
        })
    }

    async fn purge_tokens(&self, now: Timestamp) -> Result<PurgeReport, StoreError> {
        self.with(|s| {
            let now = now.seconds();
            let due: Vec<TokenId> = s.purge_at.iter().filter(|(_, at)| **at <= now).map(|(id, _)| id.clone()).collect();
            for id in &due {
                s.purge_at.remove(id);
                s.notice_at.remove(id);
                if let Some(issuer) = s.tokens.remove(id).and_then(|t| t.issued_by) {
                    if let Some(set) = s.children.get_mut(&issuer) {
                        set.remove(id);
                    }
                }
                s.children.remove(id);
            }
            Ok(PurgeReport { items_read: due.len(), deleted: due.len() })
        })
    }

    async fn retire_versions(&self, now: Timestamp) -> Result<PurgeReport, StoreError> {
        self.with(|s| {
            let mut destroyed = 0;
            for k in s.keys.values_mut().filter(|k| k.previous_due(now)) {
                k.previous = None;
                destroyed += 1;
            }
            Ok(PurgeReport { items_read: destroyed, deleted: destroyed })
        })
    }

    async fn count_request(&self, token: &TokenId, minute: i64, limit: u32) -> Result<RateCount, StoreError> {
        let mut rate = self.rate.lock().map_err(|_| StoreError::internal(FaultKind::Local, "store lock poisoned"))?;
        if rate.len() >= RATE_COUNTERS_KEPT {
            rate.retain(|(_, m), _| *m >= minute - 1);
        }
        let count = rate.entry((token.clone(), minute)).or_insert(0);
        // As DynamoDB's condition: the count stops at `limit + 1`.
        if *count > limit {
            return Ok(RateCount::Over);
        }
        *count += 1;
        Ok(if *count <= limit { RateCount::Within { count: *count } } else { RateCount::FirstOver })
    }

    async fn claim_expiry_notices(&self, now: Timestamp) -> Result<Vec<ExpiryNotice>, StoreError> {
        self.with(|s| {
            let due: Vec<TokenId> =
                s.notice_at.iter().filter(|(_, at)| **at <= now.seconds()).map(|(id, _)| id.clone()).collect();
            let mut out = Vec::new();
            for id in due {
                s.notice_at.remove(&id);
                if let Some(t) = s.tokens.get(&id).filter(|t| t.is_live(now)) {
                    out.push(ExpiryNotice {
                        token_id: id,
                        name: t.name.clone(),
                        tenant_id: t.tenant_id.clone(),
                        expires_at: t.grant.expires_at,
                    });
                }
            }
            Ok(out)
        })
    }

    async fn release_expiry_notice(&self, token: &TokenId, notice_second: i64) -> Result<(), StoreError> {
        self.with(|s| {
            if s.tokens.contains_key(token) {
                s.notice_at.insert(token.clone(), notice_second);
            }
            Ok(())
        })
    }

    async fn set_quota(&self, tenant: &TenantId, reads_per_month: Option<u64>) -> Result<(), StoreError> {
        self.with(|s| {
            s.tenants.get_mut(tenant).ok_or(StoreError::NotFound)?.reads_per_month = reads_per_month;
            Ok(())
        })
    }

    async fn count_quota_read(&self, tenant: &TenantId, month: Month, quota: u64) -> Result<bool, StoreError> {
        self.with(|s| {
            let used = s.quota_used.entry((tenant.clone(), month)).or_insert(0);
            if *used >= quota {
                return Ok(false);
            }
            *used += 1;
            Ok(true)
        })
    }

    async fn uncount_quota_read(&self, tenant: &TenantId, month: Month) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(used) = s.quota_used.get_mut(&(tenant.clone(), month)) {
                *used = used.saturating_sub(1);
            }
            Ok(())
        })
    }

    async fn quota_used(&self, tenant: &TenantId, month: Month) -> Result<u64, StoreError> {
        self.read(|s| s.quota_used.get(&(tenant.clone(), month)).copied().unwrap_or(0))
    }
}

mod persist;
