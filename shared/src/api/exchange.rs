//! `POST /auth/oidc` and `POST /auth/aws`: a workload's credential
//! exchanged for a short-lived token, with no bearer token.
//!
//! Cost of an exchange with the issuer's keys cached: two sequential round
//! trips (the identity's consistent read; then one transaction: the token,
//! its replicas, its entries under the identity's creator and the identity,
//! the `jti` claim, the `auth.exchange` event). Every refusal is one 401;
//! its cause goes to an `auth.denied` event of the identity's tenant.

use super::body::JsonObject;
use super::views::TokenView;
use super::{ApiError, ApiResponse, Ctx};
use crate::fetch;
use crate::identity::jwks::KeyLookup;
use crate::identity::{jwt, sts, Denied, IdentityRecord, TrustRule};
use crate::ids::IdentityId;
use crate::store::identities::JtiClaim;
use crate::store::{Actor, AuditAction, Conflict, Outcome, StoreError, TokenRecord};
use crate::store::{AuditStore, IdentityStore};
use crate::token::ParsedToken;
use serde_json::Value;

/// An exchanged token's name: the identity's and who exchanged (the
/// subject or the role session's ARN), within the 100 characters of a name.
fn exchanged_name(identity: &str, who: &str) -> String {
    let full = format!("{identity} ({who})");
    match full.char_indices().nth(100) {
        None => full,
        Some((cut, _)) => {
            let mut s = full[..full.char_indices().nth(99).map_or(cut, |(i, _)| i)].to_owned();
            s.push('…');
            s
        }
    }
}

// The store: the identity, the exchange's one transaction, and the refusal's event.
impl<S: IdentityStore + AuditStore + ?Sized> Ctx<'_, S> {
    pub(crate) async fn exchange_oidc(&mut self) -> Result<ApiResponse, ApiError> {
        let body = JsonObject::parse(self.req, &["identityId", "jwt"])?;
        let (id, token) = (body.str("identityId")?, body.str("jwt")?);
        let identity = self.exchanging(id).await?;
        let TrustRule::Oidc(rule) = &identity.rule else {
            return Err(self.refuse(&identity, Denied::Kind, None).await);
        };
        let parsed = match jwt::parse(token) {
            Ok(p) => p,
            Err(cause) => return Err(self.refuse(&identity, cause, None).await),
        };
        // The keys of the identity's issuer, never of one the token names.
        let key = match self.app.jwks.key(&rule.issuer, &parsed.kid, self.now).await {
            KeyLookup::Found(k) => k,
            KeyLookup::Unknown => return Err(self.refuse(&identity, Denied::UnknownKey, None).await),
            KeyLookup::Unavailable(why) => {
                return Err(ApiError::Unavailable(format!("the OpenID issuer's keys: {why}").into()));
            }
        };
        let verified = parsed.verify_signature(&key).and_then(|()| jwt::check_claims(&parsed.claims, rule, self.now));
        let verified = match verified {
            Ok(v) => v,
            Err(cause) => return Err(self.refuse(&identity, cause, None).await),
        };
        let until = verified.expires_at.plus_seconds(jwt::LEEWAY_SECONDS);
        let claim = verified.jti.as_deref().map(|j| JtiClaim::new(&rule.issuer, j, until));
        self.issue_exchanged(&identity, &verified.subject, claim).await
    }

    pub(crate) async fn exchange_aws(&mut self) -> Result<ApiResponse, ApiError> {
        let body = JsonObject::parse(self.req, &["identityId", "request"])?;
        let id = body.str("identityId")?;
        let signed = signed_request(body.raw("request"))?;
        let identity = self.exchanging(id).await?;
        let TrustRule::Aws(rule) = &identity.rule else { return Err(self.refuse(&identity, Denied::Kind, None).await) };
        let config = &self.app.config;
        let rebuilt = match sts::rebuild(&signed, &config.sts_endpoint, &config.server_id, self.now) {
            Ok(r) => r,
            Err(cause) => return Err(self.refuse(&identity, cause, None).await),
        };
        // A value HTTP cannot carry (a line break, say) is the client's
        // request refused like any other: not an STS outage to retry.
        if rebuilt.headers.iter().any(|(_, v)| hyper::header::HeaderValue::from_str(v).is_err()) {
            let what = Some("a header value HTTP cannot carry");
            return Err(self.refuse(&identity, Denied::Request, what).await);
        }
        let headers: Vec<(&str, &str)> = rebuilt.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let policy = config.outbound();
        let sent = fetch::post(&rebuilt.url, &headers, sts::BODY.into(), &policy).await;
        let resp = sent.map_err(|e| ApiError::Unavailable(format!("STS: {e}").into()))?;
        match resp.status {
            200 => {}
            400..=499 => return Err(self.refuse(&identity, Denied::StsRefused, None).await),
            s => return Err(ApiError::Unavailable(format!("STS answered {s}").into())),
        }
        let principal = std::str::from_utf8(&resp.body).ok().and_then(sts::parse_caller_identity);
        let Some(principal) = principal else {
            return Err(self.refuse(&identity, Denied::StsRefused, Some("an answer that does not parse")).await);
        };
        if !principal.matches(rule) {
            return Err(self.refuse(&identity, Denied::Principal, Some(&principal.arn)).await);
        }
        self.issue_exchanged(&identity, &principal.arn, None).await
    }

    /// The identity an exchange names, if it exists and is not deleted;
    /// else the one 401 (with an event in its tenant when there is one).
    async fn exchanging(&self, id: &str) -> Result<IdentityRecord, ApiError> {
        let Some(id) = IdentityId::parse(id) else { return Err(ApiError::Unauthorized) };
        match self.app.store.get_identity(&id).await? {
            Some(i) if i.deleted_at.is_none() => Ok(i),
            Some(i) => Err(self.refuse_as(&i, "identity_deleted").await),
            None => Err(ApiError::Unauthorized),
        }
    }

    /// The one 401 of a refused exchange, its cause recorded.
    async fn refuse(&self, identity: &IdentityRecord, cause: Denied, what: Option<&str>) -> ApiError {
        let detail = match what {
            Some(w) => format!("{}: {w}", cause.as_str()),
            None => cause.as_str().to_owned(),
        };
        self.refuse_as(identity, &detail).await
    }

    async fn refuse_as(&self, identity: &IdentityRecord, detail: &str) -> ApiError {
        let mut event = self.event_as(&identity.tenant_id, &identity.created_by, AuditAction::AuthDenied, None);
        event.token_id = None;
        event.outcome = Outcome::Denied;
        event.identity_id = Some(identity.identity_id.clone());
        event.detail = Some(detail.to_owned());
        if let Err(e) = self.app.store.append_audit(&event).await {
            tracing::warn!(request_id = %self.req.request_id, error = %e, "could not record an exchange's auth.denied");
        }
        ApiError::Unauthorized
    }

    /// The exchanged token: the identity's rights for its `tokenTtl`, a
    /// child of the identity's creator, entered under the identity.
    async fn issue_exchanged(
        &self,
        identity: &IdentityRecord,
        who: &str,
        jti: Option<JtiClaim>,
    ) -> Result<ApiResponse, ApiError> {
        let token = ParsedToken::generate();
        let record = TokenRecord {
            token_id: token.id().clone(),
            tenant_id: identity.tenant_id.clone(),
            verifier: token.verifier().to_vec(),
            name: exchanged_name(&identity.name, who),
            grant: identity.exchanged_grant(self.now),
            created_at: self.now,
            issued_by: Some(identity.created_by.clone()),
            ancestors: identity.ancestors.clone(),
            revoked_at: None,
            last_used_at: None,
            uses: 0,
            identity_id: Some(identity.identity_id.clone()),
            member_id: None,
        };
        let mut audit = self.event_as(&identity.tenant_id, &record.token_id, AuditAction::AuthExchange, None);
        audit.identity_id = Some(identity.identity_id.clone());
        audit.actor = Some(Actor::of(&record));
        audit.detail = Some(who.to_owned());
        match self.app.store.exchange(&identity.identity_id, &record, jti.as_ref(), &audit).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::Replayed)) => {
                return Err(self.refuse(identity, Denied::Replayed, None).await)
            }
            Err(StoreError::Conflict(Conflict::IssuerNotLive)) => {
                return Err(self.refuse(identity, Denied::CreatorNotLive, None).await)
            }
            Err(StoreError::Conflict(_)) => return Err(ApiError::internal("a fresh token id collided")),
            Err(e) => return Err(e.into()),
        }
        Ok(ApiResponse::json(201, &TokenView::created(&record, Some(token.secret().expose_token()))))
    }
}

/// `request` of `POST /auth/aws`: `url`, `headers` (an object of strings),
/// `body`, all required.
fn signed_request(v: Option<&Value>) -> Result<sts::SignedRequest, ApiError> {
    const RULE: &str = "must be {\"url\": …, \"headers\": {…}, \"body\": …}, strings only";
    let obj = v.and_then(Value::as_object).ok_or_else(|| ApiError::bad("request", RULE))?;
    if obj.keys().any(|k| !matches!(k.as_str(), "url" | "headers" | "body")) {
        return Err(ApiError::bad("request", RULE));
    }
    let text =
        |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| ApiError::bad("request", RULE));
    let headers = obj.get("headers").and_then(Value::as_object).ok_or_else(|| ApiError::bad("request", RULE))?;
    if headers.len() > 32 {
        return Err(ApiError::bad("request", "headers: at most 32"));
    }
    let headers = headers
        .iter()
        .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())).ok_or_else(|| ApiError::bad("request", RULE)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sts::SignedRequest { url: text("url")?, headers, body: text("body")? })
}

#[cfg(test)]
mod tests {
    use super::exchanged_name;
    use crate::api::{ApiRequest, ApiResponse, App};
    use crate::config::Config;
    use crate::store::memory::MemoryStore;
    use crate::store::Store;
    use serde_json::{json, Value};
    use std::sync::Arc;

    #[test]
    fn names_fit_in_a_hundred_characters() {
        assert_eq!(exchanged_name("deploy", "repo:a/b"), "deploy (repo:a/b)");
        let long = exchanged_name("deploy", &"x".repeat(200));
        assert_eq!(long.chars().count(), 100);
        assert!(long.ends_with('…'));
    }

    async fn call(app: &App, path: &str, bearer: Option<&str>, body: Value) -> (u16, Value) {
        let req = ApiRequest {
            method: if body.is_null() { "GET" } else { "POST" }.into(),
            path: path.into(),
            query: if body.is_null() { vec![("limit".into(), "5".into())] } else { Vec::new() },
            authorization: bearer.map(|t| format!("Bearer {t}").into()),
            content_type: Some("application/json".into()),
            body: if body.is_null() { Vec::new() } else { body.to_string().into_bytes() }.into(),
            ..ApiRequest::default()
        };
        let ApiResponse { status, body, .. } = app.handle(req).await;
        (status, serde_json::from_slice(body.expose()).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn a_header_value_http_cannot_carry_is_the_one_401_not_a_503() {
        // GIVEN an AWS identity, and an STS endpoint where nothing listens
        // (a request that reached it would be 503).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = Config {
            server_id: "vault.test".into(),
            sts_endpoint: format!("http://127.0.0.1:{port}/"),
            allow_loopback_http: true,
            ..Config::default()
        };
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let app: App = App::new(store.clone(), Arc::new(crate::kms::Unconfigured), config);
        let boot = crate::bootstrap::create_tenant(store.as_ref(), "t", app.clock.now()).await.unwrap();
        let root = boot.token.expose_token();
        let rule = json!({"name": "n", "kind": "aws", "awsAccountId": "123456789012", "awsRoleName": "r",
                          "scopes": ["keys:read"]});
        let (status, created) = call(&app, "/identities", Some(root), rule).await;
        assert_eq!(status, 201, "{created}");
        let date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
            .unwrap();
        let exchange = |token: &str| {
            json!({"identityId": created["identityId"], "request": {
                "url": format!("http://127.0.0.1:{port}/"), "body": "Action=GetCallerIdentity&Version=2011-06-15",
                "headers": {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/20261207/us-east-1/sts/aws4_request, \
                                              SignedHeaders=host;ibyok-server-id;x-amz-date, Signature=00",
                            "X-Amz-Date": date, "Ibyok-Server-Id": "vault.test", "X-Amz-Security-Token": token}}})
        };
        // The request passes every check before it is sent: STS is reached.
        assert_eq!(call(&app, "/auth/aws", None, exchange("session")).await.0, 503);

        // WHEN a header value holds a line break
        let (status, body) = call(&app, "/auth/aws", None, exchange("session\r\nX-Injected: 1")).await;

        // THEN the one 401, its cause in the audit log
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
        let (_, audit) = call(&app, "/audit", Some(root), Value::Null).await;
        let denied = &audit["events"][0];
        assert_eq!(denied["action"], "auth.denied", "{audit}");
        assert_eq!(denied["detail"], "request: a header value HTTP cannot carry");
    }
}
