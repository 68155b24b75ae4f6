//! `/tokens`: issue, list, revoke (with its whole subtree), revoke self.

use super::auth::Caller;
use super::body::{check_name, fill_page, JsonObject};
use super::limits::{MAX_RATE_LIMIT, MIN_RATE_LIMIT};
use super::views::TokenView;
use super::{ApiError, ApiResponse, Ctx};
use crate::ids::{KeyId, TenantId, TokenId};
use crate::store::{
    AuditAction, AuditEvent, Conflict, Fetch, Revocable, StoreError, TokenFilter, TokenRecord, TokenState,
};
use crate::store::{AuditStore, LimitStore, ReadStore, TokenStore};
use crate::token::{derive_child, Escalation, IssueRequest, ParsedToken, Scope, Scopes};
use futures::stream::{self, StreamExt};
use ipnet::IpNet;
use std::collections::HashSet;

pub const DEFAULT_EXPIRES_IN: i64 = 2_592_000;
pub const MAX_EXPIRES_IN: i64 = 31_536_000;
/// At most this many entries in `keyIds` (one batch read) and `allowedCidrs`.
pub const MAX_LIST_ENTRIES: usize = 100;
/// Revocations of one level of descendants run this many at a time.
const REVOKE_CONCURRENCY: usize = 64;

/// A validated issue request. `unknown_key_ids` is set when `keyIds` names a
/// string that is not even a key id: such a key exists nowhere.
pub(crate) struct Issue {
    pub name: String,
    pub req: IssueRequest,
    pub unknown_key_ids: bool,
}

pub(crate) fn parse_issue(body: &JsonObject) -> Result<Issue, ApiError> {
    let name = check_name("name", body.str("name")?)?;
    let scopes = body
        .opt_string_list("scopes")?
        .ok_or_else(|| ApiError::bad("scopes", "is required"))?
        .into_iter()
        .map(|s| Scope::parse(s).ok_or_else(|| ApiError::BadRequest(format!("scopes: unknown scope `{s}`"))))
        .collect::<Result<Scopes, _>>()?;
    if scopes.is_empty() {
        return Err(ApiError::bad("scopes", "must not be empty"));
    }
    let expires_in = match body.raw("expiresIn") {
        None => DEFAULT_EXPIRES_IN,
        Some(v) => v
            .as_i64()
            .filter(|n| (60..=MAX_EXPIRES_IN).contains(n))
            .ok_or_else(|| ApiError::bad("expiresIn", "must be an integer from 60 to 31536000"))?,
    };
    let mut unknown_key_ids = false;
    let key_ids = match body.opt_string_list("keyIds")? {
        None => None,
        Some(list) => {
            if list.is_empty() || list.len() > MAX_LIST_ENTRIES {
                return Err(ApiError::bad("keyIds", "must list 1 to 100 key ids"));
            }
            let mut ids: Vec<KeyId> = Vec::with_capacity(list.len());
            for s in list {
                match KeyId::parse(s) {
                    Some(id) if !ids.contains(&id) => ids.push(id),
                    Some(_) => {}
                    None => unknown_key_ids = true,
                }
            }
            Some(ids)
        }
    };
    let allowed_cidrs = match body.opt_string_list("allowedCidrs")? {
        None => None,
        Some(list) => {
            if list.is_empty() || list.len() > MAX_LIST_ENTRIES {
                return Err(ApiError::bad("allowedCidrs", "must list 1 to 100 CIDRs"));
            }
            let nets =
                list.into_iter()
                    .map(|s| s.parse::<IpNet>().map(|n| n.trunc()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| ApiError::bad("allowedCidrs", "must be IPv4 or IPv6 CIDRs such as 203.0.113.0/24"))?;
            Some(nets)
        }
    };
    // `null` is "not given", as for keyIds and allowedCidrs: inherit.
    let rate_limit = match body.raw("rateLimit") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| (MIN_RATE_LIMIT..=MAX_RATE_LIMIT).contains(n))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ApiError::bad("rateLimit", "must be an integer from 1 to 100000 (requests a minute)"))?,
        ),
    };
    let req = IssueRequest { scopes, expires_in_seconds: expires_in, key_ids, allowed_cidrs, rate_limit };
    Ok(Issue { name, req, unknown_key_ids })
}

// The store: authenticating, then the token tree.
impl<S: TokenStore + ReadStore + LimitStore + AuditStore + ?Sized> Ctx<'_, S> {
    pub(crate) async fn create_token(&mut self) -> Result<ApiResponse, ApiError> {
        // The body is read before authenticating only to fetch the named
        // keys in the same round trip; its errors are reported after.
        let parsed =
            JsonObject::parse(self.req, &["name", "scopes", "expiresIn", "keyIds", "allowedCidrs", "rateLimit"])
                .and_then(|b| parse_issue(&b));
        let keys = match &parsed {
            Ok(issue) => issue.req.key_ids.clone().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let (caller, fetched) = self.authenticate(Fetch { keys, ..Fetch::default() }).await?;
        self.require(&caller, Scope::TokensWrite).await?;
        let Issue { name, req, unknown_key_ids } = parsed?;
        let derived = match derive_child(&caller.token.creating_grant(self.now), &req, self.now) {
            // A restricted caller naming a key outside its list: 403, whether
            // or not that key exists.
            Ok(_) if unknown_key_ids && caller.token.grant.key_ids.is_some() => Err(Escalation::KeyIds),
            other => other,
        };
        let child = match derived {
            Ok(child) => child,
            Err(esc) => return Err(self.forbid(&caller, esc.message()).await),
        };
        if let Some(ids) = &req.key_ids {
            let all_exist = !unknown_key_ids
                && ids.iter().all(|id| fetched.keys.get(id).is_some_and(|k| k.tenant_id == caller.token.tenant_id));
            if !all_exist {
                return Err(ApiError::bad("keyIds", "names a key that does not exist"));
            }
        }
        let token = ParsedToken::generate();
        let (issued_by, ancestors) = caller.token.parent_of_new();
        let record = TokenRecord {
            token_id: token.id().clone(),
            tenant_id: caller.token.tenant_id.clone(),
            verifier: token.verifier().to_vec(),
            name,
            grant: child,
            created_at: self.now,
            issued_by: Some(issued_by),
            ancestors,
            revoked_at: None,
            last_used_at: None,
            uses: 0,
            identity_id: None,
            member_id: None,
        };
        let mut audit = self.event(&caller, AuditAction::TokenCreate, None);
        audit.token_id = Some(caller.token.token_id.clone());
        self.app.store.create_token(&record, &audit).await.map_err(|e| match e {
            // The issuer was revoked (or expired) between our read and our write.
            StoreError::Conflict(Conflict::IssuerNotLive) => ApiError::Unauthorized,
            StoreError::Conflict(Conflict::Exists) => ApiError::internal("a fresh token id collided"),
            e => e.into(),
        })?;
        Ok(ApiResponse::json(201, &TokenView::created(&record, Some(token.secret().expose_token()))))
    }

    pub(crate) async fn list_tokens(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::TokensRead).await?;
        let paging = self.req.paging()?;
        let filter = self.token_filter()?;
        let (store, tenant, now) = (&self.app.store, &caller.token.tenant_id, self.now);
        let (tokens, cursor) = fill_page(
            paging.limit,
            paging.cursor,
            |n, c| async move { store.list_tokens(tenant, n, c.as_deref()).await },
            |t: &TokenRecord| caller.token.reaches(t) && filter.matches(t, now),
        )
        .await?;
        let views: Vec<TokenView> = tokens.iter().map(TokenView::listed).collect();
        Ok(ApiResponse::json(200, &serde_json::json!({"tokens": views, "nextCursor": cursor})))
    }

    /// `expiringWithin`, `unusedFor` (seconds, 1 to ten years) and `state`.
    fn token_filter(&self) -> Result<TokenFilter, ApiError> {
        const MAX_SECONDS: i64 = 315_360_000;
        let seconds = |name: &str| match self.req.query_param(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|s| (1..=MAX_SECONDS).contains(s))
                .map(Some)
                .ok_or_else(|| ApiError::bad(name, "must be whole seconds from 1 to 315360000")),
        };
        let state = match self.req.query_param("state") {
            None => None,
            Some(s) => {
                Some(TokenState::parse(s).ok_or_else(|| ApiError::bad("state", "must be live, revoked or expired"))?)
            }
        };
        Ok(TokenFilter { expiring_within: seconds("expiringWithin")?, unused_for: seconds("unusedFor")?, state })
    }

    pub(crate) async fn revoke_token(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        const NO_SUCH_TOKEN: ApiError = ApiError::NotFound("no such token");
        let target_id = TokenId::parse(id);
        let fetch = Fetch { tokens: target_id.iter().cloned().collect(), ..Fetch::default() };
        let (caller, mut fetched) = self.authenticate(fetch).await?;
        self.require(&caller, Scope::TokensWrite).await?;
        let target = target_id
            .and_then(|id| fetched.tokens.remove(&id))
            .filter(|t| caller.token.reaches(t))
            .ok_or(NO_SUCH_TOKEN)?;
        let target = Revocable { token_id: target.token_id, expires_at: Some(target.grant.expires_at) };
        self.revoke_tree(&caller, target).await?;
        Ok(ApiResponse::no_content())
    }

    pub(crate) async fn revoke_self(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        let target =
            Revocable { token_id: caller.token.token_id.clone(), expires_at: Some(caller.token.grant.expires_at) };
        self.revoke_tree(&caller, target).await?;
        Ok(ApiResponse::no_content())
    }

    /// Revokes `root` and, level by level, everything issued below it. Each
    /// revocation answers the tokens its token issued, read after `revokedAt`
    /// was set, and an issue whose issuer is revoked fails: no child can
    /// slip in between. The audit event is written beside the root's
    /// revocation (one round trip, not two) and retracted if the revocation
    /// fails, so that no event stays for a revocation that did not happen.
    async fn revoke_tree(&self, caller: &Caller, root: Revocable) -> Result<(), ApiError> {
        let mut audit = self.event(caller, AuditAction::TokenRevoke, None);
        audit.token_id = Some(root.token_id.clone());
        self.revoke_recorded(&caller.token.tenant_id, &audit, root).await
    }

    /// [`Ctx::revoke_tree`] with its event given: `audit` is written beside
    /// the root's revocation and retracted if that fails (a revocation's
    /// `token.revoke`, a leaked token's `token.leaked`).
    pub(crate) async fn revoke_recorded(
        &self,
        tenant: &TenantId,
        audit: &AuditEvent,
        root: Revocable,
    ) -> Result<(), ApiError> {
        let grace = self.app.config.revoked_retention_seconds;
        let (revoked, recorded) = tokio::join!(
            self.app.store.revoke_token(tenant, &root, self.now, grace),
            self.app.store.append_audit(audit)
        );
        let frontier = match revoked {
            Ok(frontier) => frontier,
            Err(e) => {
                if let Err(undo) = self.app.store.retract_event(audit).await {
                    tracing::warn!(request_id = %self.req.request_id, error = %undo, "could not retract the event of a failed revocation");
                }
                return Err(match e {
                    StoreError::NotFound => ApiError::NotFound("no such token"),
                    e => e.into(),
                });
            }
        };
        self.revoke_all(tenant, frontier, HashSet::from([root.token_id.clone()])).await?;
        Ok(recorded?)
    }

    /// Revokes the tokens of `frontier` and, level by level, everything
    /// issued below them (skipping those in `seen`), 64 at a time: a
    /// revocation's cascade, and an identity's deletion.
    pub(crate) async fn revoke_all(
        &self,
        tenant: &TenantId,
        mut frontier: Vec<Revocable>,
        mut seen: HashSet<TokenId>,
    ) -> Result<(), ApiError> {
        let grace = self.app.config.revoked_retention_seconds;
        while !frontier.is_empty() {
            frontier.retain(|t| seen.insert(t.token_id.clone()));
            let results: Vec<_> = stream::iter(frontier.drain(..))
                .map(|t| revoke_one(self, tenant, t, grace))
                .buffer_unordered(REVOKE_CONCURRENCY)
                .collect()
                .await;
            for r in results {
                frontier.extend(r?);
            }
        }
        Ok(())
    }
}

async fn revoke_one<S: TokenStore + ?Sized>(
    ctx: &Ctx<'_, S>,
    tenant: &TenantId,
    t: Revocable,
    grace: i64,
) -> Result<Vec<Revocable>, ApiError> {
    match ctx.app.store.revoke_token(tenant, &t, ctx.now, grace).await {
        Ok(children) => Ok(children),
        // Already purged by cleanup: nothing below it can be live either.
        Err(StoreError::NotFound) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}
