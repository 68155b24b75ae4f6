//! An in-memory store: the local development server's backend (optionally
//! saved to a file after each write) and the fast unit tests'. It honours the
//! same conditions as the DynamoDB adapter.

// One file per aggregate, as the port is split.
mod audit;
mod digests;
mod identities;
mod keys;
mod limits;
mod members;
mod notices;
mod reads;
mod signin;
mod tenants;
mod tokens;
mod usage;

use super::*;
use crate::clock::{Month, Timestamp};
use crate::envelope::Envelope;
use crate::fault::{Fault, FaultKind};
use crate::ids::{KeyId, TenantId, TokenId};
use crate::mode::{Environment, Mode, ModeOverrides, TenantModes};
use crate::token::Scopes;
use crate::usage::{Count, DailyCount, Day, SeqNo, Subject as UsageSubject, Tally, UsageBatch};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::HashMap;
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
    /// How far each usage batch was applied ([`UsageStore::apply_usage`]).
    batches: BTreeMap<String, SeqNo>,
    /// Expiry notices still to send, by the second they are due.
    notice_at: BTreeMap<TokenId, i64>,
    /// Value reads counted against a tenant's quota, per UTC month.
    quota_used: BTreeMap<(TenantId, Month), u64>,
    /// The identities aggregate (`identities.rs`).
    identities: identities::Identities,
    /// The members aggregate (`members.rs`).
    members: members::Members,
    /// The audit digests, per (tenant, shard), by seq (`digests.rs`).
    digests: BTreeMap<(TenantId, u32), BTreeMap<u64, AuditDigest>>,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    file: Option<PathBuf>,
    /// Requests per (token, UTC minute): not saved to the data file (a
    /// minute's count outlives no restart worth keeping it for).
    rate: Mutex<HashMap<(TokenId, i64), u32>>,
    /// Sign-in's passing state (`signin.rs`), not saved either.
    pending: Mutex<HashMap<String, (crate::secret::Redacted<String>, Timestamp)>>,
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
    /// at start, so that a development server survives a restart. A folder
    /// it makes is private to its user (0700); the file is always 0600.
    pub fn open_dir(dir: &std::path::Path) -> std::io::Result<Self> {
        crate::files::create_private_dir(dir)?;
        let file = dir.join("store.json");
        let state = match std::fs::read(&file) {
            Ok(bytes) => persist::load(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        Ok(Self { state: Mutex::new(state), file: Some(file), ..Self::default() })
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

mod persist;
