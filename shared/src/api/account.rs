//! Tenant-wide routes: mode settings, usage and audit.

use super::body::{fill_page, JsonObject};
use super::{ApiError, ApiResponse, Ctx};
use crate::clock::{Month, Timestamp};
use crate::ids::{KeyId, TokenId};
use crate::mode::{Environment, Mode};
use crate::store::Store;
use crate::store::{AuditAction, Fetch};
use crate::token::Scope;
use serde::Serialize;
use serde_json::Value;

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

impl<S: Store + ?Sized> Ctx<'_, S> {
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
                Some(Value::String(m)) if Mode::parse(m).is_some() => {
                    changes.push((env, Mode::parse(m).expect("checked")));
                }
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

    pub(crate) async fn audit(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::UsageRead).await?;
        let paging = self.req.paging()?;
        let page = self.app.store.list_audit(&caller.token.tenant_id, paging.limit, paging.cursor.as_deref()).await?;
        Ok(ApiResponse::json(200, &serde_json::json!({"events": page.items, "nextCursor": page.next})))
    }
}
