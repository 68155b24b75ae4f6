//! An in-memory store: the local development server's backend (optionally
//! saved to a file after each write) and the fast unit tests'. It honours the
//! same conditions as the DynamoDB adapter.

use super::*;
use crate::envelope::Envelope;
use crate::token::Scopes;
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
    /// Per tenant, by (at, sequence).
    audit: BTreeMap<TenantId, BTreeMap<(i64, u64), AuditEvent>>,
    purge_at: BTreeMap<TokenId, Timestamp>,
    seq: u64,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    file: Option<PathBuf>,
}

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

    fn with<R>(&self, f: impl FnOnce(&mut State) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut state = self.state.lock().map_err(|_| StoreError::Internal("store lock poisoned".into()))?;
        let out = f(&mut state)?;
        if let Some(path) = &self.file {
            persist::save(path, &state).map_err(|e| StoreError::Internal(format!("saving the data file: {e}")))?;
        }
        Ok(out)
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> Result<R, StoreError> {
        let state = self.state.lock().map_err(|_| StoreError::Internal("store lock poisoned".into()))?;
        Ok(f(&state))
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
        Ok(Self { state: Mutex::new(state), file: Some(file) })
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

fn push_audit(s: &mut State, e: &AuditEvent) {
    let Some(tenant) = e.tenant_id.clone() else { return };
    s.seq += 1;
    let seq = s.seq;
    s.audit.entry(tenant).or_default().insert((e.at.millis(), seq), e.clone());
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
                return Err(StoreError::Conflict("tenant exists"));
            }
            s.tenants.insert(tenant.tenant_id.clone(), tenant.clone());
            s.purge_at.insert(root.token_id.clone(), root.grant.expires_at);
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
            push_audit(s, audit);
            Ok(modes)
        })
    }

    async fn create_key(&self, key: &KeyRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            if s.keys.contains_key(&key.key_id) {
                return Err(StoreError::Conflict("key exists"));
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
                KeyChange::Value { envelope, preview } => {
                    k.envelope = envelope.clone();
                    k.preview = preview.clone();
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
            // Already gone (a concurrent delete) counts as deleted, as in DynamoDB.
            if s.keys.contains_key(key) {
                key_in_tenant(s, tenant, key)?;
                s.keys.remove(key);
            }
            push_audit(s, audit);
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
            let k = s.keys.get_mut(key).ok_or(StoreError::NotFound)?;
            k.retrievals += 1;
            k.last_used_at = Some(at);
            let t = s.tokens.get_mut(token).ok_or(StoreError::NotFound)?;
            t.uses += 1;
            t.last_used_at = Some(at);
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
            let token_holds = s.tokens.get(&expect.token_id).is_some_and(|t| {
                t.verifier == expect.verifier
                    && t.tenant_id == expect.tenant_id
                    && t.revoked_at.is_none()
                    && t.grant.expires_at > at
            });
            let tenant_mode =
                s.tenants.get(&expect.tenant_id).map(|t| t.modes).unwrap_or_default().get(expect.environment);
            let key_holds = s.keys.get(&expect.key_id).is_some_and(|k| {
                let override_mode = k.mode_overrides.get(&expect.environment).copied();
                let mode_holds = match expect.source {
                    Source::Guardrail => true,
                    Source::KeyOverride => override_mode == Some(expect.mode),
                    Source::TenantSetting => override_mode.is_none() && tenant_mode == expect.mode,
                };
                k.tenant_id == expect.tenant_id
                    && k.name == expect.key_name
                    && k.llm_type == expect.llm_type
                    && expect.envelope.as_ref().is_none_or(|e| *e == k.envelope)
                    && mode_holds
            });
            if !(token_holds && key_holds) {
                return Ok(false);
            }
            if let Some(k) = s.keys.get_mut(&expect.key_id) {
                k.retrievals += 1;
                k.last_used_at = Some(at);
            }
            if let Some(t) = s.tokens.get_mut(&expect.token_id) {
                t.uses += 1;
                t.last_used_at = Some(at);
            }
            push_audit(s, audit);
            Ok(true)
        })
    }

    async fn unrecord_read(&self, key: &KeyId, token: &TokenId) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(k) = s.keys.get_mut(key) {
                k.retrievals = k.retrievals.saturating_sub(1);
            }
            if let Some(t) = s.tokens.get_mut(token) {
                t.uses = t.uses.saturating_sub(1);
            }
            Ok(())
        })
    }

    async fn create_token(&self, token: &TokenRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            if s.tokens.contains_key(&token.token_id) {
                return Err(StoreError::Conflict("token exists"));
            }
            if let Some(parent) = &token.issued_by {
                let p = s.tokens.get(parent).ok_or(StoreError::Conflict("issuer is gone"))?;
                if p.revoked_at.is_some() {
                    return Err(StoreError::Conflict("issuer was revoked"));
                }
                s.children.entry(parent.clone()).or_default().insert(token.token_id.clone());
            }
            s.purge_at.insert(token.token_id.clone(), token.grant.expires_at);
            s.tokens.insert(token.token_id.clone(), token.clone());
            push_audit(s, audit);
            Ok(())
        })
    }

    async fn revoke_token(
        &self,
        tenant: &TenantId,
        token: &TokenId,
        at: Timestamp,
        purge_at: Timestamp,
    ) -> Result<Vec<TokenId>, StoreError> {
        self.with(|s| {
            let t = s.tokens.get_mut(token).filter(|t| &t.tenant_id == tenant).ok_or(StoreError::NotFound)?;
            t.revoked_at.get_or_insert(at);
            s.purge_at.insert(token.clone(), purge_at);
            Ok(s.children.get(token).map(|c| c.iter().cloned().collect()).unwrap_or_default())
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

    async fn list_audit(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let after = decode_cursor(tenant, cursor)?;
        self.read(|s| {
            let events = s.audit.get(tenant).into_iter().flat_map(|m| m.iter().rev()).map(|((at, seq), e)| {
                // Newest first: invert so that the position grows along the page.
                (format!("{:020}{:020}", i64::MAX - at, u64::MAX - seq), e.clone())
            });
            page(tenant, events, limit, after)
        })
    }

    async fn purge_tokens(&self, now: Timestamp) -> Result<PurgeReport, StoreError> {
        self.with(|s| {
            let due: Vec<TokenId> = s.purge_at.iter().filter(|(_, at)| **at <= now).map(|(id, _)| id.clone()).collect();
            for id in &due {
                s.purge_at.remove(id);
                s.tokens.remove(id);
                s.children.remove(id);
            }
            Ok(PurgeReport { items_read: due.len(), deleted: due.len() })
        })
    }
}

/// The data file of `ibyok dev --data-dir`: plain JSON of the records (the
/// values inside are the envelopes, sealed under the local master key).
mod persist {
    use super::*;
    use crate::token::{Grant, Scope};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct TokenRow {
        token_id: String,
        tenant_id: String,
        verifier: String,
        name: String,
        scopes: Vec<Scope>,
        expires_at: i64,
        key_ids: Option<Vec<String>>,
        allowed_cidrs: Option<Vec<String>>,
        created_at: i64,
        issued_by: Option<String>,
        ancestors: Vec<String>,
        revoked_at: Option<i64>,
        last_used_at: Option<i64>,
        uses: u64,
        children: Vec<String>,
        purge_at: i64,
    }

    #[derive(Serialize, Deserialize)]
    struct KeyRow {
        key_id: String,
        tenant_id: String,
        name: String,
        llm_type: String,
        preview: String,
        mode_overrides: ModeOverrides,
        created_at: i64,
        updated_at: i64,
        last_used_at: Option<i64>,
        retrievals: u64,
        ciphertext: String,
        nonce: String,
        wrapped_key: String,
    }

    #[derive(Serialize, Deserialize)]
    struct TenantRow {
        tenant_id: String,
        name: String,
        modes: TenantModes,
        created_at: i64,
    }

    #[derive(Serialize, Deserialize)]
    struct AuditRow {
        tenant_id: String,
        seq: u64,
        event: AuditEvent,
    }

    #[derive(Serialize, Deserialize, Default)]
    struct File {
        tokens: Vec<TokenRow>,
        keys: Vec<KeyRow>,
        tenants: Vec<TenantRow>,
        audit: Vec<AuditRow>,
        seq: u64,
    }

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn unb64(s: &str) -> std::io::Result<Vec<u8>> {
        URL_SAFE_NO_PAD.decode(s).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub(super) fn save(path: &std::path::Path, s: &State) -> std::io::Result<()> {
        let file = File {
            tokens: s
                .tokens
                .values()
                .map(|t| TokenRow {
                    token_id: t.token_id.to_string(),
                    tenant_id: t.tenant_id.to_string(),
                    verifier: b64(&t.verifier),
                    name: t.name.clone(),
                    scopes: t.grant.scopes.iter().collect(),
                    expires_at: t.grant.expires_at.millis(),
                    key_ids: t.grant.key_ids.as_ref().map(|v| v.iter().map(ToString::to_string).collect()),
                    allowed_cidrs: t.grant.allowed_cidrs.as_ref().map(|v| v.iter().map(ToString::to_string).collect()),
                    created_at: t.created_at.millis(),
                    issued_by: t.issued_by.as_ref().map(ToString::to_string),
                    ancestors: t.ancestors.iter().map(ToString::to_string).collect(),
                    revoked_at: t.revoked_at.map(Timestamp::millis),
                    last_used_at: t.last_used_at.map(Timestamp::millis),
                    uses: t.uses,
                    children: s.children.get(&t.token_id).into_iter().flatten().map(ToString::to_string).collect(),
                    purge_at: s.purge_at.get(&t.token_id).copied().unwrap_or(t.grant.expires_at).millis(),
                })
                .collect(),
            keys: s
                .keys
                .values()
                .map(|k| KeyRow {
                    key_id: k.key_id.to_string(),
                    tenant_id: k.tenant_id.to_string(),
                    name: k.name.clone(),
                    llm_type: k.llm_type.clone(),
                    preview: k.preview.clone(),
                    mode_overrides: k.mode_overrides.clone(),
                    created_at: k.created_at.millis(),
                    updated_at: k.updated_at.millis(),
                    last_used_at: k.last_used_at.map(Timestamp::millis),
                    retrievals: k.retrievals,
                    ciphertext: b64(&k.envelope.ciphertext),
                    nonce: b64(&k.envelope.nonce),
                    wrapped_key: b64(&k.envelope.wrapped_key),
                })
                .collect(),
            tenants: s
                .tenants
                .values()
                .map(|t| TenantRow {
                    tenant_id: t.tenant_id.to_string(),
                    name: t.name.clone(),
                    modes: t.modes,
                    created_at: t.created_at.millis(),
                })
                .collect(),
            audit: s
                .audit
                .iter()
                .flat_map(|(tenant, events)| {
                    events.iter().map(move |((_, seq), e)| AuditRow {
                        tenant_id: tenant.to_string(),
                        seq: *seq,
                        event: AuditEvent { retain_until: None, tenant_id: None, ..e.clone() },
                    })
                })
                .collect(),
            seq: s.seq,
        };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&file)?)?;
        std::fs::rename(tmp, path)
    }

    fn bad(what: &str) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("data file: bad {what}"))
    }

    pub(super) fn load(bytes: &[u8]) -> std::io::Result<State> {
        let file: File = serde_json::from_slice(bytes)?;
        let mut s = State { seq: file.seq, ..State::default() };
        for t in file.tokens {
            let id = TokenId::from_stored(t.token_id);
            let key_ids = t.key_ids.map(|v| v.into_iter().map(KeyId::from_stored).collect());
            let allowed_cidrs = match t.allowed_cidrs {
                None => None,
                Some(v) => Some(v.iter().map(|c| c.parse().map_err(|_| bad("CIDR"))).collect::<Result<_, _>>()?),
            };
            let rec = TokenRecord {
                token_id: id.clone(),
                tenant_id: TenantId::from_stored(t.tenant_id),
                verifier: unb64(&t.verifier)?,
                name: t.name,
                grant: Grant {
                    scopes: t.scopes.into_iter().collect::<Scopes>(),
                    expires_at: Timestamp::from_millis(t.expires_at),
                    key_ids,
                    allowed_cidrs,
                },
                created_at: Timestamp::from_millis(t.created_at),
                issued_by: t.issued_by.map(TokenId::from_stored),
                ancestors: t.ancestors.into_iter().map(TokenId::from_stored).collect(),
                revoked_at: t.revoked_at.map(Timestamp::from_millis),
                last_used_at: t.last_used_at.map(Timestamp::from_millis),
                uses: t.uses,
            };
            if !t.children.is_empty() {
                s.children.insert(id.clone(), t.children.into_iter().map(TokenId::from_stored).collect());
            }
            s.purge_at.insert(id.clone(), Timestamp::from_millis(t.purge_at));
            s.tokens.insert(id, rec);
        }
        for k in file.keys {
            let nonce: [u8; 12] = unb64(&k.nonce)?.try_into().map_err(|_| bad("nonce"))?;
            let id = KeyId::from_stored(k.key_id);
            s.keys.insert(
                id.clone(),
                KeyRecord {
                    key_id: id,
                    tenant_id: TenantId::from_stored(k.tenant_id),
                    name: k.name,
                    llm_type: k.llm_type,
                    preview: k.preview,
                    mode_overrides: k.mode_overrides,
                    created_at: Timestamp::from_millis(k.created_at),
                    updated_at: Timestamp::from_millis(k.updated_at),
                    last_used_at: k.last_used_at.map(Timestamp::from_millis),
                    retrievals: k.retrievals,
                    envelope: Envelope {
                        ciphertext: unb64(&k.ciphertext)?,
                        nonce,
                        wrapped_key: unb64(&k.wrapped_key)?,
                    },
                },
            );
        }
        for t in file.tenants {
            let id = TenantId::from_stored(t.tenant_id);
            s.tenants.insert(
                id.clone(),
                TenantRecord {
                    tenant_id: id,
                    name: t.name,
                    modes: t.modes,
                    created_at: Timestamp::from_millis(t.created_at),
                },
            );
        }
        for a in file.audit {
            let tenant = TenantId::from_stored(a.tenant_id);
            let event = AuditEvent { tenant_id: Some(tenant.clone()), ..a.event };
            s.audit.entry(tenant).or_default().insert((event.at.millis(), a.seq), event);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap;

    fn audit(tenant: &TenantId, at: Timestamp) -> AuditEvent {
        AuditEvent {
            tenant_id: Some(tenant.clone()),
            at,
            request_id: "r".into(),
            action: AuditAction::KeyRead,
            token_id: None,
            key_id: None,
            environment: None,
            effective_mode: None,
            outcome: Outcome::Ok,
            source_ip: None,
            user_agent: None,
            retain_until: None,
        }
    }

    /// Each expectation, broken alone, makes the write a no-op.
    #[tokio::test]
    async fn an_expected_read_is_recorded_only_while_every_expectation_holds() {
        let store = MemoryStore::new();
        let now = Timestamp::from_millis(1_700_000_000_000);
        let b = bootstrap::create_tenant(&store, "t", now).await.unwrap();
        let tenant = b.tenant.tenant_id.clone();
        let key = KeyRecord {
            key_id: KeyId::generate(&tenant),
            tenant_id: tenant.clone(),
            name: "k".into(),
            llm_type: "openai".into(),
            preview: "sk-…".into(),
            mode_overrides: ModeOverrides::from([(Environment::Staging, Mode::Live)]),
            created_at: now,
            updated_at: now,
            last_used_at: None,
            retrievals: 0,
            envelope: Envelope { ciphertext: vec![1, 2, 3], nonce: [7; 12], wrapped_key: vec![4, 5] },
        };
        store.create_key(&key, &audit(&tenant, now)).await.unwrap();
        let holds = ExpectedRead {
            tenant_id: tenant.clone(),
            token_id: b.root.token_id.clone(),
            verifier: b.root.verifier.clone(),
            key_id: key.key_id.clone(),
            key_name: "k".into(),
            llm_type: "openai".into(),
            environment: Environment::Development,
            mode: Mode::Mock,
            source: Source::TenantSetting,
            envelope: None,
        };
        type Break<'a> = Box<dyn Fn(&mut ExpectedRead) + 'a>;
        let broken: Vec<(&str, Break)> = vec![
            ("verifier", Box::new(|e| e.verifier[0] ^= 1)),
            ("tenant", Box::new(|e| e.tenant_id = TenantId::generate())),
            ("name", Box::new(|e| e.key_name = "old".into())),
            ("llm type", Box::new(|e| e.llm_type = "groq".into())),
            ("tenant setting", Box::new(|e| e.mode = Mode::Live)),
            ("override", Box::new(|e| e.source = Source::KeyOverride)),
            ("override mode", Box::new(|e| (e.environment, e.source) = (Environment::Staging, Source::KeyOverride))),
            ("envelope", Box::new(|e| e.envelope = Some(Envelope { nonce: [8; 12], ..key.envelope.clone() }))),
        ];
        for (what, break_it) in &broken {
            let mut e = holds.clone();
            break_it(&mut e);
            assert!(!store.record_expected_read(&e, now, &audit(&tenant, now)).await.unwrap(), "{what}");
        }
        let staging = ExpectedRead {
            environment: Environment::Staging,
            mode: Mode::Live,
            source: Source::KeyOverride,
            ..holds.clone()
        };
        let live = ExpectedRead { envelope: Some(key.envelope.clone()), ..staging.clone() };
        let guarded = ExpectedRead { mode: Mode::Live, source: Source::Guardrail, ..holds.clone() };
        for e in [&holds, &staging, &live, &guarded] {
            assert!(store.record_expected_read(e, now, &audit(&tenant, now)).await.unwrap());
        }
        let fetched = store
            .fetch(&Fetch { tokens: vec![b.root.token_id.clone()], keys: vec![key.key_id.clone()], tenant: None })
            .await
            .unwrap();
        assert_eq!(fetched.keys[&key.key_id].retrievals, 4, "only the reads whose expectations held");
        assert_eq!(fetched.tokens[&b.root.token_id].uses, 4);
        let events = store.list_audit(&tenant, 100, None).await.unwrap().items;
        assert_eq!(events.len(), 5, "the key's creation and four reads");
        // Expired, then revoked.
        let later = b.root.grant.expires_at;
        assert!(!store.record_expected_read(&holds, later, &audit(&tenant, later)).await.unwrap(), "expired");
        store.revoke_token(&tenant, &b.root.token_id, now, now).await.unwrap();
        assert!(!store.record_expected_read(&holds, now, &audit(&tenant, now)).await.unwrap(), "revoked");
    }
}
