//! `GET /external/keys/{keyId}/value`: the read path, the product.
//!
//! The full path, two round trips in sequence: one `BatchGetItem` (token,
//! key and tenant settings, consistent), then — concurrently — the KMS
//! `Decrypt` (live only) and the usage and audit writes.
//!
//! `?version=` picks the version (`current`, `previous` within its window,
//! `pending`, or a number); one that is not readable is 404, mock or live.
//!
//! The planned path, one round trip: a successful read leaves a [`ReadPlan`]
//! for its token, key, environment and version asked for (what it found: no
//! value, no data key, no token). The next such read sends the `Decrypt` of
//! the planned envelope (live) and [`ReadStore::record_expected_read`] at once;
//! the store writes the counters and the audit event only if everything the
//! plan assumed still holds at that moment — the token stored, unrevoked and
//! unexpired, the key's name, type, envelope and override, the version still
//! where it was and readable, the tenant's setting — and otherwise writes
//! nothing, and the read takes the full path. A plan can cost a round trip,
//! never a wrong answer.
//!
//! [`ReadStore::record_expected_read`]: crate::store::ReadStore::record_expected_read

use super::keys::not_found_as_key;
use super::limits::{self, Known, PreCounted};
use super::{ApiError, ApiResponse, Ctx};
use crate::clock::Timestamp;
use crate::envelope::{self, EnvelopeError};
use crate::ids::{KeyId, TenantId, TokenId};
use crate::kms::{KeyContext, KmsError};
use crate::mode::{self, Environment, Mode, Source, TenantModes};
use crate::store::{Actor, AuditAction, AuditEvent, ExpectedRead, Fetch, PlannedVersion, VersionSelector};
use crate::store::{AuditStore, LimitStore, ReadStore};
use crate::token::{Grant, ParsedToken, Scope};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModeInfo {
    environment: Environment,
    effective_mode: Mode,
    source: Source,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ValueView<'a> {
    key_id: &'a KeyId,
    name: &'a str,
    llm_type: &'a str,
    value: &'a str,
    version: u64,
    mode_info: ModeInfo,
}

/// What a successful read found, for the next read of the same token, key
/// and environment. Holds no secret: the token's verifier is a hash, and the
/// envelope is what the table holds.
pub(crate) struct ReadPlan {
    /// The token's grant (immutable once issued): expiry and `allowedCidrs`
    /// are checked here, per request.
    grant: Grant,
    expect: ExpectedRead,
    /// A previous version's end: past it, the plan is not tried.
    retires_at: Option<Timestamp>,
    /// The tenant's quota when the plan was made, and when that was: the
    /// store's conditions do not cover the quota, so a plan serves for at
    /// most [`PLAN_QUOTA_SECONDS`], and a quota the operator sets or changes
    /// reaches every instance's planned reads within that time.
    quota: Option<u64>,
    made_at: Timestamp,
    /// Who reads (the token's name and identity never change).
    actor: Actor,
}

/// How long a plan stands for the tenant's quota.
pub(crate) const PLAN_QUOTA_SECONDS: i64 = 60;

type PlanKey = (TokenId, KeyId, Environment, VersionSelector);

/// The plans of this process (a Lambda instance serves one request at a
/// time; the development server many). Bounded: full, it starts afresh.
#[derive(Default)]
pub(crate) struct ReadPlans(Mutex<HashMap<PlanKey, Arc<ReadPlan>>>);

const MAX_PLANS: usize = 1024;

impl ReadPlans {
    fn get(&self, key: &PlanKey) -> Option<Arc<ReadPlan>> {
        self.0.lock().ok()?.get(key).cloned()
    }

    fn insert(&self, key: PlanKey, plan: ReadPlan) {
        if let Ok(mut plans) = self.0.lock() {
            if plans.len() >= MAX_PLANS {
                plans.clear();
            }
            plans.insert(key, Arc::new(plan));
        }
    }

    fn remove(&self, key: &PlanKey) {
        if let Ok(mut plans) = self.0.lock() {
            plans.remove(key);
        }
    }
}

fn value_response(expect: &ExpectedRead, value: &str) -> ApiResponse {
    ApiResponse::json(
        200,
        &ValueView {
            key_id: &expect.key_id,
            name: &expect.key_name,
            llm_type: &expect.llm_type,
            value,
            version: expect.version.number,
            mode_info: ModeInfo { environment: expect.environment, effective_mode: expect.mode, source: expect.source },
        },
    )
}

// The store: authenticating, then recording the read.
impl<S: ReadStore + LimitStore + AuditStore + ?Sized> Ctx<'_, S> {
    /// The `env` query, else the server's own environment; `None` if the
    /// query names none.
    fn environment(&self) -> Option<Environment> {
        match self.req.query_param("env") {
            None => Some(self.app.config.environment),
            Some(e) => Environment::parse_query(e),
        }
    }

    /// The `version` query, else the current version; `None` if the query
    /// names none.
    fn version_selector(&self) -> Option<VersionSelector> {
        match self.req.query_param("version") {
            None => Some(VersionSelector::Current),
            Some(v) => VersionSelector::parse(v),
        }
    }

    pub(crate) async fn read_value(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let key_id = KeyId::parse(id);
        // Parsed once, for both paths.
        let parsed = self.presented_token();
        if let (Some(token), Some(key_id), Some(environment), Some(which)) =
            (&parsed, &key_id, self.environment(), self.version_selector())
        {
            if let Some(resp) = self.read_planned(token, key_id, environment, which).await? {
                return Ok(resp);
            }
        }
        self.read_fetched(parsed, key_id).await
    }

    /// The planned path; `None` hands the request to the full path: no plan,
    /// a refusal (the full path answers and audits it), or a plan the store
    /// no longer bears out.
    async fn read_planned(
        &mut self,
        parsed: &ParsedToken,
        key_id: &KeyId,
        environment: Environment,
        which: VersionSelector,
    ) -> Result<Option<ApiResponse>, ApiError> {
        let plan_key = (parsed.id().clone(), key_id.clone(), environment, which);
        let Some(plan) = self.app.read_plans.get(&plan_key) else { return Ok(None) };
        if self.now >= plan.made_at.plus_seconds(PLAN_QUOTA_SECONDS) {
            self.app.read_plans.remove(&plan_key);
            return Ok(None);
        }
        // A token refused in this minute already: the full path answers
        // (one read, no write).
        if let Known::Over(_) = self.app.limit_memo.known(parsed.id(), limits::minute_of(self.now)) {
            return Ok(None);
        }
        let expect = &plan.expect;
        if !parsed.matches(&expect.verifier)
            || !plan.grant.unexpired_at(self.now)
            || !plan.grant.allows_source(self.req.source_ip)
            || plan.retires_at.is_some_and(|r| self.now >= r)
        {
            return Ok(None);
        }
        *self.token_id = Some(parsed.id().clone());
        let mut audit = self.event_as(&expect.tenant_id, &expect.token_id, AuditAction::KeyRead, Some(key_id.clone()));
        audit.environment = Some(environment);
        audit.effective_mode = Some(expect.mode);
        audit.version = Some(expect.version.number);
        audit.identity_id = plan.actor.identity_id.clone();
        audit.actor = Some(plan.actor.clone());
        let store = &self.app.store;
        let record = store.record_expected_read(expect, self.now, &audit);
        let record_and_open = async {
            match &expect.envelope {
                None => (None, record.await),
                Some(envelope) => {
                    let ctx = KeyContext::new(&expect.tenant_id, &expect.key_id, expect.version.number);
                    let (opened, recorded) =
                        tokio::join!(envelope::open(self.app.kms.as_ref(), &ctx, envelope), record);
                    (Some(opened), recorded)
                }
            }
        };
        // A limited token's count, beside the transaction (nothing for an
        // unlimited one).
        let rate_limit = plan.grant.rate_limit;
        let count = async {
            match rate_limit {
                Some(limit) => Some(store.count_request(&expect.token_id, limits::minute_of(self.now), limit).await),
                None => None,
            }
        };
        let counting = limits::count_quota(store.as_ref(), &expect.tenant_id, plan.quota, self.now);
        let ((opened, recorded), counted, quota_counted) = tokio::join!(record_and_open, count, counting);
        let landed = recorded.as_ref().is_ok_and(|landed| *landed);
        if landed {
            // The transaction's conditions confirmed the token.
            *self.token_expires_at = Some(plan.grant.expires_at);
        }
        if let (Some(limit), Some(counted)) = (rate_limit, counted) {
            if !landed {
                // Unconfirmed: the full path authenticates, then uses this count.
                self.pre_counted = Some(PreCounted { limit, result: counted });
            } else if let Err(refused) =
                self.apply_rate(&expect.tenant_id, &expect.token_id, limit, Some(counted)).await
            {
                // Over the limit (or not counted): the read is not served, so
                // it is taken back, and a decrypted value is dropped unseen.
                self.take_back_read(key_id, &expect.token_id, &audit).await;
                if let Some(Ok(true)) = quota_counted {
                    self.uncount_quota(&expect.tenant_id).await;
                }
                return Err(refused);
            }
        }
        let served = landed && opened.as_ref().is_none_or(|o| o.is_ok());
        let read = (key_id, &expect.token_id, &audit);
        self.settle_quota(&expect.tenant_id, read, served, quota_counted).await?;
        match (recorded?, opened) {
            (false, _) => {
                self.app.read_plans.remove(&plan_key);
                Ok(None)
            }
            (true, None) => Ok(Some(value_response(expect, &mode::fake_value(&expect.llm_type, key_id)))),
            (true, Some(Ok(value))) => Ok(Some(value_response(expect, value.expose_value()))),
            (true, Some(Err(e))) => {
                self.app.read_plans.remove(&plan_key);
                Err(self.open_failed(&expect.tenant_id, key_id, &expect.token_id, e, Some(&audit)).await)
            }
        }
    }

    /// The full path.
    async fn read_fetched(
        &mut self,
        parsed: Option<ParsedToken>,
        key_id: Option<KeyId>,
    ) -> Result<ApiResponse, ApiError> {
        let fetch = Fetch {
            keys: key_id.iter().cloned().collect(),
            tenant: key_id.as_ref().map(KeyId::tenant_hint),
            ..Fetch::default()
        };
        let (caller, mut fetched) = self.authenticate_parsed(parsed, fetch).await?;
        self.require(&caller, Scope::KeysRead).await?;
        let environment = self
            .environment()
            .ok_or_else(|| ApiError::bad("env", "must be dev, development, staging, prod or production"))?;
        let which = self
            .version_selector()
            .ok_or_else(|| ApiError::bad("version", "must be current, previous, pending or a number"))?;
        let key = self.visible_key(&caller, &mut fetched, key_id.as_ref()).await?;
        let (version, stage) = key.select(which, self.now).ok_or(ApiError::NotFound("no such version"))?;
        let (version, planned) = (version.clone(), PlannedVersion { number: version.number, stage });
        let tenant = fetched.tenant.filter(|t| t.tenant_id == caller.token.tenant_id);
        let quota = tenant.as_ref().and_then(|t| t.reads_per_month);
        let tenant_modes = tenant.map(|t| t.modes).unwrap_or_else(TenantModes::default);
        let (effective_mode, source) =
            mode::resolve(&self.app.config.guardrails, environment, &key.mode_overrides, &tenant_modes);

        let mut audit = self.event(&caller, AuditAction::KeyRead, Some(key.key_id.clone()));
        audit.environment = Some(environment);
        audit.effective_mode = Some(effective_mode);
        audit.version = Some(version.number);
        let store = &self.app.store;
        let record = store.record_read(&key.key_id, &caller.token.token_id, self.now, &audit);
        // A tenant with a quota counts the read beside its own writes.
        let counting = limits::count_quota(store.as_ref(), &key.tenant_id, quota, self.now);
        let read = (&key.key_id, &caller.token.token_id, &audit);

        let live;
        let fake;
        let value: &str = match effective_mode {
            Mode::Mock => {
                let (recorded, counted) = tokio::join!(record, counting);
                self.settle_quota(&key.tenant_id, read, recorded.is_ok(), counted).await?;
                recorded.map_err(not_found_as_key)?;
                fake = mode::fake_value(&key.llm_type, &key.key_id);
                &fake
            }
            Mode::Live => {
                let ctx = KeyContext::new(&key.tenant_id, &key.key_id, version.number);
                let (opened, recorded, counted) =
                    tokio::join!(envelope::open(self.app.kms.as_ref(), &ctx, &version.envelope), record, counting);
                self.settle_quota(&key.tenant_id, read, opened.is_ok() && recorded.is_ok(), counted).await?;
                match (opened, recorded) {
                    (Ok(v), Ok(())) => {
                        live = v;
                        live.expose_value()
                    }
                    (Ok(_), Err(e)) => return Err(not_found_as_key(e)),
                    (Err(e), recorded) => {
                        let token = &caller.token.token_id;
                        let counted = recorded.is_ok().then_some(&audit);
                        return Err(self.open_failed(&key.tenant_id, &key.key_id, token, e, counted).await);
                    }
                }
            }
        };
        let token = caller.token;
        let actor = Actor::of(&token);
        let expect = ExpectedRead {
            tenant_id: token.tenant_id,
            token_id: token.token_id,
            verifier: token.verifier,
            key_id: key.key_id,
            key_name: key.name,
            llm_type: key.llm_type,
            environment,
            mode: effective_mode,
            source,
            envelope: (effective_mode == Mode::Live).then_some(version.envelope),
            version: planned,
        };
        let resp = value_response(&expect, value);
        let plan_key = (expect.token_id.clone(), expect.key_id.clone(), environment, which);
        let plan =
            ReadPlan { grant: token.grant, expect, retires_at: version.retires_at, quota, made_at: self.now, actor };
        self.app.read_plans.insert(plan_key, plan);
        Ok(resp)
    }

    /// Takes back the counters and the event of a read that is not served
    /// (best effort: a failure is logged; the counters then err high by one).
    pub(crate) async fn take_back_read(&self, key: &KeyId, token: &TokenId, audit: &AuditEvent) {
        if let Err(undo) = self.app.store.unrecord_read(key, token, audit).await {
            tracing::warn!(request_id = %self.req.request_id, error = %undo, "could not take back the counters of a failed read");
        }
    }

    /// A value that did not open: its counts and its event are taken back
    /// (best effort) if they were written, and a failed integrity check raises an alert.
    async fn open_failed(
        &self,
        tenant: &TenantId,
        key: &KeyId,
        token: &TokenId,
        e: EnvelopeError,
        counted: Option<&AuditEvent>,
    ) -> ApiError {
        if let Some(audit) = counted {
            self.take_back_read(key, token, audit).await;
        }
        if matches!(e, EnvelopeError::Integrity | EnvelopeError::Kms(KmsError::Integrity)) {
            tracing::error!(
                alert = "integrity",
                request_id = %self.req.request_id,
                tenant_id = %tenant,
                key_id = %key,
                "stored envelope failed its integrity check: possible tampering"
            );
        }
        e.into()
    }
}
