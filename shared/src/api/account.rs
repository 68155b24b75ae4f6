//! Tenant-wide routes: mode settings, usage and audit.

use super::body::{fill_page, JsonObject};
use super::{ApiError, ApiResponse, Ctx};
use crate::clock::{Month, Timestamp};
use crate::ids::{KeyId, TokenId};
use crate::mode::{Environment, Mode};
use crate::store::{AuditAction, Fetch};
use crate::store::{AuditStore, DigestStore, KeyStore, LimitStore, ReadStore, TenantStore, TokenStore, UsageStore};
use crate::token::Scope;
use crate::usage::{Day, Subject, DAILY_RETENTION_DAYS};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyUsage {
    key_id: KeyId,
    name: String,
    retrievals: u64,
    last_used_at: Option<Timestamp>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenUsage {
    token_id: TokenId,
    name: String,
    uses: u64,
    last_used_at: Option<Timestamp>,
}

/// A tenant's monthly quota of value reads.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QuotaView {
    reads_per_month: u64,
    used: u64,
    resets_at: Timestamp,
}

/// What the deployment forces, per environment (`null` when nothing).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Guardrails {
    development: Option<Mode>,
    staging: Option<Mode>,
    production: Option<Mode>,
    prod_mock_allowed: bool,
}

// The store: authenticating, then settings, listings for usage, counters and the audit log.
impl<
        S: TenantStore + KeyStore + TokenStore + UsageStore + ReadStore + LimitStore + AuditStore + DigestStore + ?Sized,
    > Ctx<'_, S>
{
    pub(crate) async fn get_modes(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::SettingsRead).await?;
        let want = Fetch { tenant: Some(caller.token.tenant_id.clone()), ..Fetch::default() };
        let tenant = self.app.store.fetch(&want).await?.tenant;
        let modes = tenant.map(|t| t.modes).unwrap_or_default();
        Ok(ApiResponse::json(200, &modes))
    }

    pub(crate) async fn get_guardrails(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::SettingsRead).await?;
        let g = &self.app.config.guardrails;
        let forced = |env| g.forced.get(&env).copied();
        let body = Guardrails {
            development: forced(Environment::Development),
            staging: forced(Environment::Staging),
            // PROD_MOCK_ALLOWED=false makes production live whatever else.
            production: forced(Environment::Production).or((!g.prod_mock_allowed).then_some(Mode::Live)),
            prod_mock_allowed: g.prod_mock_allowed,
        };
        Ok(ApiResponse::json(200, &body))
    }

    pub(crate) async fn put_modes(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::SettingsWrite).await?;
        let body = JsonObject::parse(self.req, &["development", "staging", "production"])?;
        let mut changes = Vec::new();
        for env in Environment::ALL {
            match body.raw(env.as_str()) {
                None => {}
                Some(Value::String(m)) if let Some(mode) = Mode::parse(m) => changes.push((env, mode)),
                Some(_) => return Err(ApiError::bad(env.as_str(), "must be mock or live")),
            }
        }
        if let Some((env, _)) = changes.iter().find(|(e, m)| !self.app.config.guardrails.permits(*e, *m)) {
            return Err(ApiError::Conflict(format!(
                "{}: production cannot be mock while PROD_MOCK_ALLOWED=false",
                env.as_str()
            )));
        }
        let audit = self.event(&caller, AuditAction::SettingsUpdate, None);
        let modes = self.app.store.update_modes(&caller.token.tenant_id, &changes, &audit).await?;
        Ok(ApiResponse::json(200, &modes))
    }

    pub(crate) async fn usage(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::UsageRead).await?;
        let tenant = &caller.token.tenant_id;
        let store = &self.app.store;
        let lists = async {
            let (keys, _) = fill_page(
                usize::MAX,
                None,
                |n, c| async move { store.list_keys(tenant, n, c.as_deref()).await },
                |_| true,
            )
            .await?;
            let (tokens, _) = fill_page(
                usize::MAX,
                None,
                |n, c| async move { store.list_tokens(tenant, n, c.as_deref()).await },
                |_| true,
            )
            .await?;
            Ok::<_, ApiError>((keys, tokens))
        };
        // The quota beside the listing: the tenant's record, then (only with
        // a quota) this month's counter.
        let now = self.now;
        let quota = async {
            let want = Fetch { tenant: Some(tenant.clone()), ..Fetch::default() };
            let Some(reads_per_month) = store.fetch(&want).await?.tenant.and_then(|t| t.reads_per_month) else {
                return Ok::<_, ApiError>(None);
            };
            let month = Month::of(now);
            let used = store.quota_used(tenant, month).await?;
            Ok(Some(QuotaView { reads_per_month, used, resets_at: month.next().start() }))
        };
        let (lists, quota) = tokio::join!(lists, quota);
        let ((keys, tokens), quota) = (lists?, quota?);
        let keys: Vec<KeyUsage> = keys
            .into_iter()
            .map(|k| KeyUsage {
                key_id: k.key_id,
                name: k.name,
                retrievals: k.retrievals,
                last_used_at: k.last_used_at,
            })
            .collect();
        let tokens: Vec<TokenUsage> = tokens
            .into_iter()
            .map(|t| TokenUsage { token_id: t.token_id, name: t.name, uses: t.uses, last_used_at: t.last_used_at })
            .collect();
        Ok(ApiResponse::json(200, &serde_json::json!({"keys": keys, "tokens": tokens, "quota": quota})))
    }

    /// `GET /usage/daily`: reads per UTC day, per key and per token, over
    /// at most 90 days.
    pub(crate) async fn daily_usage(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::UsageRead).await?;
        let tenant = caller.token.tenant_id.clone();
        let today = Day::of(self.now);
        let day = |name: &str| -> Result<Option<Day>, ApiError> {
            match self.req.query_param(name) {
                None => Ok(None),
                Some(v) => Day::parse(v).map(Some).ok_or_else(|| ApiError::bad(name, "must be a UTC day, YYYY-MM-DD")),
            }
        };
        let (from, to) = (day("from")?, day("to")?);
        let to_day = to.unwrap_or(today);
        let from_day = from.unwrap_or(to_day.plus_days(-29));
        for (name, d) in [("from", from_day), ("to", to_day)] {
            if d > today {
                return Err(ApiError::bad(name, "must not be in the future"));
            }
        }
        if from_day > to_day {
            return Err(ApiError::bad("from", "must not be after to"));
        }
        if from_day.days_until(to_day) >= DAILY_RETENTION_DAYS {
            return Err(ApiError::bad("from", "the range is at most 90 days"));
        }
        let only = match (self.req.query_param("keyId"), self.req.query_param("tokenId")) {
            (Some(_), Some(_)) => return Err(ApiError::bad("tokenId", "give keyId or tokenId, not both")),
            (Some(k), None) => Some(Subject::Key(KeyId::from_stored(k.to_owned()))),
            (None, Some(t)) => Some(Subject::Token(TokenId::from_stored(t.to_owned()))),
            (None, None) => None,
        };
        let counts = self.app.store.daily_usage(&tenant, from_day, to_day).await?;
        let days: Vec<Day> = Day::range(from_day, to_day).collect();
        let index = |d: Day| from_day.days_until(d) as usize;
        let mut total = vec![0u64; days.len()];
        let mut series: BTreeMap<Subject, Vec<u64>> = BTreeMap::new();
        for c in &counts {
            if let Subject::Key(_) = c.subject {
                total[index(c.day)] += c.reads;
            }
            if only.as_ref().is_none_or(|o| *o == c.subject) {
                series.entry(c.subject.clone()).or_insert_with(|| vec![0; days.len()])[index(c.day)] = c.reads;
            }
        }
        // The names, as stored now (`null` for a key deleted or a token
        // purged since). A narrowing id must be the tenant's: stored in it,
        // or counted in it.
        let mut want = Fetch::default();
        for s in series.keys().chain(only.iter()) {
            match s {
                Subject::Key(k) => want.keys.push(k.clone()),
                Subject::Token(t) => want.tokens.push(t.clone()),
            }
        }
        let stored = self.app.store.fetch(&want).await?;
        let key_name = |k: &KeyId| stored.keys.get(k).filter(|r| r.tenant_id == tenant).map(|r| r.name.clone());
        let token_name = |t: &TokenId| stored.tokens.get(t).filter(|r| r.tenant_id == tenant).map(|r| r.name.clone());
        if let Some(o) = &only {
            let known = series.contains_key(o)
                || match o {
                    Subject::Key(k) => key_name(k).is_some(),
                    Subject::Token(t) => token_name(t).is_some(),
                };
            if !known {
                return Err(ApiError::NotFound(match o {
                    Subject::Key(_) => "no such key",
                    Subject::Token(_) => "no such token",
                }));
            }
            // Narrowed: the total is the reads of the one key or token.
            total = series.get(o).cloned().unwrap_or_else(|| vec![0; days.len()]);
        }
        let mut series: Vec<(Subject, Vec<u64>)> = series.into_iter().collect();
        // Busiest first, then by id.
        series.sort_by_key(|(_, r)| std::cmp::Reverse(r.iter().sum::<u64>()));
        let mut keys = Vec::new();
        let mut tokens = Vec::new();
        for (s, reads) in series {
            match s {
                Subject::Key(k) => keys.push(serde_json::json!({"keyId": k, "name": key_name(&k), "reads": reads})),
                Subject::Token(t) => {
                    tokens.push(serde_json::json!({"tokenId": t, "name": token_name(&t), "reads": reads}))
                }
            }
        }
        let body = serde_json::json!({"days": days, "total": total, "keys": keys, "tokens": tokens});
        Ok(ApiResponse::json(200, &body))
    }

    pub(crate) async fn audit(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::UsageRead).await?;
        let paging = self.req.paging()?;
        let page = self.app.store.list_audit(&caller.token.tenant_id, paging.limit, paging.cursor.as_deref()).await?;
        // Each event also shows its id and its time to the millisecond: what
        // its canonical form (`crate::digest`) holds beyond the contract's fields.
        let events: Vec<Value> = page
            .items
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("eventId".into(), Value::from(e.event_id.clone()));
                    m.insert("atMillis".into(), Value::from(e.at.millis()));
                }
                v
            })
            .collect();
        Ok(ApiResponse::json(200, &serde_json::json!({"events": events, "nextCursor": page.next})))
    }

    /// `GET /audit/digests`: the tenant's signed digests, newest first, with
    /// the public key to check them by (`crate::digest`).
    pub(crate) async fn audit_digests(&mut self) -> Result<ApiResponse, ApiError> {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine;
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::UsageRead).await?;
        let paging = self.req.paging()?;
        if paging.limit > crate::store::DIGESTS_PAGE_MAX && self.req.query_param("limit").is_some() {
            return Err(ApiError::bad("limit", "must be an integer from 1 to 10"));
        }
        let time = |name: &str| match self.req.query_param(name) {
            None => Ok(None),
            Some(v) => {
                Timestamp::parse_rfc3339(v).map(Some).ok_or_else(|| ApiError::bad(name, "must be an RFC 3339 time"))
            }
        };
        let (from, to) = (time("from")?, time("to")?);
        let tenant = &caller.token.tenant_id;
        let listing = self.app.store.list_digests(tenant, from, to, paging.limit, paging.cursor.as_deref());
        let (page, key) = match &self.app.audit_signer {
            Some(signer) => {
                let (page, key) = tokio::join!(listing, signer.public_key());
                (page?, Some((signer.key_id().to_owned(), key?)))
            }
            None => (listing.await?, None),
        };
        let digests: Vec<Value> = page
            .items
            .iter()
            .map(|d| {
                serde_json::json!({
                    "shard": d.shard,
                    "seq": d.seq,
                    "through": d.through,
                    "statement": d.statement,
                    "signature": STANDARD.encode(&d.signature),
                    "index": STANDARD.encode(&d.index),
                })
            })
            .collect();
        let body = serde_json::json!({
            "publicKey": key.as_ref().map(|(_, k)| STANDARD.encode(k)),
            "keyId": key.as_ref().map(|(id, _)| id.clone()),
            "algorithm": crate::digest::ALGORITHM,
            "digests": digests,
            "nextCursor": page.next,
        });
        Ok(ApiResponse::json(200, &body))
    }
}
