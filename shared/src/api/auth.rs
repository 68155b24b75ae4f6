//! Authentication and authorization of one request. A token's shape and
//! checksum are checked before any lookup; the token record comes back in the
//! same round trip as whatever else the route needs.

use super::limits::{self, Known};
use super::{ApiError, Ctx};
use crate::ids::{KeyId, TenantId, TokenId};
use crate::mode::{Environment, Mode};
use crate::store::{Actor, AuditAction, AuditEvent, Fetch, Fetched, KeyRecord, Outcome, RateCount, TokenRecord};
use crate::store::{AuditStore, LimitStore, ReadStore};
use crate::token::{ParsedToken, Scope};

/// The authenticated caller.
pub(crate) struct Caller {
    pub token: TokenRecord,
}

fn bearer(header: Option<&str>) -> Option<&str> {
    let header = header?.trim();
    let (scheme, rest) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

// The store: authenticating (the token, key and tenant in one fetch), rate limits and denials.
impl<S: ReadStore + LimitStore + AuditStore + ?Sized> Ctx<'_, S> {
    /// Authenticates the caller and fetches `extra` in the same round trip.
    pub(crate) async fn authenticate(&mut self, extra: Fetch) -> Result<(Caller, Fetched), ApiError> {
        let parsed = self.presented_token();
        self.authenticate_parsed(parsed, extra).await
    }

    /// The request's bearer token, if it has the token's shape and checksum.
    pub(crate) fn presented_token(&self) -> Option<ParsedToken> {
        let header = self.req.authorization.as_ref().map(|h| h.expose().as_str());
        bearer(header).and_then(ParsedToken::parse)
    }

    /// [`Ctx::authenticate`] with the token already parsed.
    pub(crate) async fn authenticate_parsed(
        &mut self,
        parsed: Option<ParsedToken>,
        mut extra: Fetch,
    ) -> Result<(Caller, Fetched), ApiError> {
        let parsed = parsed.ok_or(ApiError::Unauthorized)?;
        *self.token_id = Some(parsed.id().clone());
        extra.tokens.insert(0, parsed.id().clone());
        // A limited token's count goes out beside the fetch when its limit
        // is known here already (or was taken by the planned read); an
        // unlimited or unknown token's fetch goes alone.
        let store = &self.app.store;
        let minute = limits::minute_of(self.now);
        let (fetched, early) = match (self.pre_counted.take(), self.app.limit_memo.known(parsed.id(), minute)) {
            (Some(p), _) => (store.fetch(&extra).await, Some((p.limit, p.result))),
            (None, Known::Limited(limit)) => {
                let (f, c) = tokio::join!(store.fetch(&extra), store.count_request(parsed.id(), minute, limit));
                (f, Some((limit, c)))
            }
            (None, Known::Over(limit)) => (store.fetch(&extra).await, Some((limit, Ok(RateCount::Over)))),
            (None, Known::Unknown | Known::Unlimited) => (store.fetch(&extra).await, None),
        };
        let mut fetched = fetched?;
        let token = fetched.tokens.get(parsed.id()).cloned().ok_or(ApiError::Unauthorized)?;
        if !parsed.matches(&token.verifier) {
            return Err(ApiError::Unauthorized);
        }
        let refused = !token.is_live(self.now) || !token.grant.allows_source(self.req.source_ip);
        let caller = Caller { token };
        if refused {
            self.deny(&caller, None).await;
            return Err(ApiError::Unauthorized);
        }
        *self.token_expires_at = Some(caller.token.grant.expires_at);
        self.app.limit_memo.learn(parsed.id(), caller.token.grant.rate_limit);
        if let Some(limit) = caller.token.grant.rate_limit {
            // A count taken for another limit (none can be: a grant never
            // changes) would be taken again.
            let early = early.filter(|(l, _)| *l == limit).map(|(_, c)| c);
            let token = &caller.token;
            self.apply_rate(&token.tenant_id, &token.token_id, limit, early).await?;
        }
        // The caller's own record stays in `fetched` only if the route asked
        // for it too (revoking oneself by id).
        if !extra.tokens[1..].contains(parsed.id()) {
            fetched.tokens.remove(parsed.id());
        }
        Ok((caller, fetched))
    }

    pub(crate) async fn require(&self, caller: &Caller, scope: Scope) -> Result<(), ApiError> {
        if caller.token.grant.scopes.allows(scope) {
            return Ok(());
        }
        Err(self.forbid(caller, format!("this token lacks the {} scope", scope.as_str())).await)
    }

    /// A 403, recorded as an `auth.denied` event.
    pub(crate) async fn forbid(&self, caller: &Caller, message: impl Into<String>) -> ApiError {
        self.deny(caller, None).await;
        ApiError::Forbidden(message.into())
    }

    /// The key `id` if it exists in the caller's tenant and the caller's
    /// `keyIds` allow it; else 404, the same for every reason.
    pub(crate) async fn visible_key(
        &self,
        caller: &Caller,
        fetched: &mut Fetched,
        id: Option<&KeyId>,
    ) -> Result<KeyRecord, ApiError> {
        const NO_SUCH_KEY: ApiError = ApiError::NotFound("no such key");
        let id = id.ok_or(NO_SUCH_KEY)?;
        let key = fetched.keys.remove(id).filter(|k| k.tenant_id == caller.token.tenant_id).ok_or(NO_SUCH_KEY)?;
        if !caller.token.grant.allows_key(id) {
            self.deny(caller, Some(id)).await;
            return Err(NO_SUCH_KEY);
        }
        Ok(key)
    }

    /// Records an `auth.denied` event. A failure to record it is logged; the
    /// caller gets its 401/403/404 either way.
    async fn deny(&self, caller: &Caller, key: Option<&KeyId>) {
        let mut event = self.event(caller, AuditAction::AuthDenied, key.cloned());
        event.outcome = Outcome::Denied;
        if let Err(e) = self.app.store.append_audit(&event).await {
            tracing::warn!(request_id = %self.req.request_id, error = %e, "could not record auth.denied");
        }
    }
}

// Events need nothing of the store.
impl<S: ?Sized> Ctx<'_, S> {
    pub(crate) fn event(&self, caller: &Caller, action: AuditAction, key_id: Option<KeyId>) -> AuditEvent {
        let mut event = self.event_as(&caller.token.tenant_id, &caller.token.token_id, action, key_id);
        event.actor = Some(Actor::of(&caller.token));
        event.identity_id = caller.token.identity_id.clone();
        event
    }

    /// An event of `token`, in `tenant`.
    pub(crate) fn event_as(
        &self,
        tenant: &TenantId,
        token: &TokenId,
        action: AuditAction,
        key_id: Option<KeyId>,
    ) -> AuditEvent {
        AuditEvent {
            tenant_id: Some(tenant.clone()),
            at: self.now,
            request_id: self.req.request_id.clone(),
            action,
            token_id: Some(token.clone()),
            key_id,
            version: None,
            environment: None::<Environment>,
            effective_mode: None::<Mode>,
            outcome: Outcome::Ok,
            source_ip: self.req.source_ip.map(|ip| ip.to_string()),
            user_agent: self.req.user_agent.clone(),
            actor: None,
            identity_id: None,
            detail: None,
            event_id: crate::ids::new_event_id(),
            retain_until: Some(self.now.plus_seconds(self.app.config.audit_retention_days * 86_400)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearerabc")), None);
        assert_eq!(bearer(None), None);
    }
}
