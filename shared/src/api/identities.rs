//! `/identities`: the workload identities' trust rules (create, list, get,
//! delete). The exchanges through them are in `exchange`.

use super::body::{fill_page, JsonObject};
use super::tokens::{parse_issue, Issue};
use super::views::IdentityView;
use super::{ApiError, ApiResponse, Ctx};
use crate::identity::{
    AwsRule, IdentityRecord, OidcRule, SubjectMatch, TrustRule, DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL, MIN_TOKEN_TTL,
};
use crate::ids::IdentityId;
use crate::store::{AuditAction, Conflict, Fetch, StoreError};
use crate::store::{AuditStore, IdentityStore, LimitStore, ReadStore, TokenStore};
use crate::token::{derive_child, Escalation, Scope};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

const FIELDS: &[&str] = &[
    "name",
    "kind",
    "issuer",
    "audience",
    "subject",
    "subjectMatch",
    "boundClaims",
    "awsAccountId",
    "awsRoleName",
    "scopes",
    "keyIds",
    "allowedCidrs",
    "rateLimit",
    "tokenTtl",
];
const OIDC_FIELDS: &[&str] = &["issuer", "audience", "subject", "subjectMatch", "boundClaims"];
const AWS_FIELDS: &[&str] = &["awsAccountId", "awsRoleName"];
/// Bound claims at most, and allowed values of one claim at most.
const MAX_BOUND_CLAIMS: usize = 20;
const MAX_CLAIM_VALUES: usize = 50;
const NO_SUCH_IDENTITY: ApiError = ApiError::NotFound("no such identity");

/// A string field of 1 to `max` characters, without surrounding spaces.
fn text<'a>(body: &'a JsonObject, field: &str, max: usize) -> Result<&'a str, ApiError> {
    let v = body.str(field)?;
    let n = v.chars().count();
    if n == 0 || n > max || v.trim() != v {
        return Err(ApiError::bad(field, &format!("must be 1 to {max} characters, without surrounding spaces")));
    }
    Ok(v)
}

fn parse_issuer(body: &JsonObject, allow_loopback_http: bool) -> Result<String, ApiError> {
    let issuer = text(body, "issuer", 512)?;
    let policy = crate::fetch::Policy::DEPLOYED.with_loopback_http(allow_loopback_http);
    let uri = crate::fetch::check_url(issuer, &policy).map_err(|_| {
        let rule = if allow_loopback_http {
            "must be an https:// URL (or http:// to 127.0.0.1 or localhost)"
        } else {
            "must be an https:// URL"
        };
        ApiError::bad("issuer", rule)
    })?;
    if uri.query().is_some() || issuer.contains('#') {
        return Err(ApiError::bad("issuer", "must have no query or fragment"));
    }
    Ok(issuer.to_owned())
}

fn parse_bound_claims(body: &JsonObject) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    const RULE: &str = "must map up to 20 claim names to a string or a list of 1 to 50 strings";
    let map = match body.raw("boundClaims") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) if m.len() <= MAX_BOUND_CLAIMS => m,
        Some(_) => return Err(ApiError::bad("boundClaims", RULE)),
    };
    let mut out = BTreeMap::new();
    for (name, v) in map {
        if name.is_empty() || name.chars().count() > 128 {
            return Err(ApiError::bad("boundClaims", RULE));
        }
        let values = match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(list) if (1..=MAX_CLAIM_VALUES).contains(&list.len()) => list
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| ApiError::bad("boundClaims", RULE))?,
            _ => return Err(ApiError::bad("boundClaims", RULE)),
        };
        if values.iter().any(|x| x.is_empty() || x.chars().count() > 512) {
            return Err(ApiError::bad("boundClaims", "values must be 1 to 512 characters"));
        }
        out.insert(name.clone(), values);
    }
    Ok(out)
}

/// The trust rule and the exchanged tokens' lifetime of a `POST
/// /identities` body (the rights are `POST /tokens`'s fields).
fn parse_rule(body: &JsonObject, allow_loopback_http: bool) -> Result<(TrustRule, i64), ApiError> {
    let kind = body.str("kind")?;
    let (rule, foreign) = match kind {
        "oidc" => {
            let subject_match = match body.opt_str("subjectMatch")? {
                None => SubjectMatch::Exact,
                Some(m) => {
                    SubjectMatch::parse(m).ok_or_else(|| ApiError::bad("subjectMatch", "must be exact or glob"))?
                }
            };
            let rule = OidcRule {
                issuer: parse_issuer(body, allow_loopback_http)?,
                audience: text(body, "audience", 256)?.to_owned(),
                subject: text(body, "subject", 512)?.to_owned(),
                subject_match,
                bound_claims: parse_bound_claims(body)?,
            };
            (TrustRule::Oidc(rule), AWS_FIELDS)
        }
        "aws" => {
            let account = body.str("awsAccountId")?;
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::bad("awsAccountId", "must be 12 digits"));
            }
            let role = body.str("awsRoleName")?;
            let role_ok = (1..=64).contains(&role.len())
                && role.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
            if !role_ok {
                return Err(ApiError::bad("awsRoleName", "must be an IAM role name (1 to 64 of A-Z a-z 0-9 +=,.@_-)"));
            }
            (TrustRule::Aws(AwsRule { account_id: account.to_owned(), role_name: role.to_owned() }), OIDC_FIELDS)
        }
        _ => return Err(ApiError::bad("kind", "must be oidc or aws")),
    };
    if let Some(f) = foreign.iter().find(|f| body.has(f)) {
        return Err(ApiError::BadRequest(format!("{f}: not a field of a {kind} identity")));
    }
    let ttl = match body.raw("tokenTtl") {
        None => DEFAULT_TOKEN_TTL,
        Some(v) => v
            .as_i64()
            .filter(|n| (MIN_TOKEN_TTL..=MAX_TOKEN_TTL).contains(n))
            .ok_or_else(|| ApiError::bad("tokenTtl", "must be an integer from 60 to 3600"))?,
    };
    Ok((rule, ttl))
}

// The store: authenticating, then identities and the revocation of their tokens.
impl<S: IdentityStore + TokenStore + ReadStore + LimitStore + AuditStore + ?Sized> Ctx<'_, S> {
    pub(crate) async fn create_identity(&mut self) -> Result<ApiResponse, ApiError> {
        let loopback = self.app.config.allow_loopback_http;
        // Parsed before authenticating only to fetch the named keys in the
        // same round trip; its errors are reported after.
        let parsed =
            JsonObject::parse(self.req, FIELDS).and_then(|b| Ok((parse_issue(&b)?, parse_rule(&b, loopback)?)));
        let keys = match &parsed {
            Ok((issue, _)) => issue.req.key_ids.clone().unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        let (caller, fetched) = self.authenticate(Fetch { keys, ..Fetch::default() }).await?;
        self.require(&caller, Scope::TokensWrite).await?;
        let (Issue { name, mut req, unknown_key_ids }, (rule, token_ttl)) = parsed?;
        req.expires_in_seconds = token_ttl;
        let derived = match derive_child(&caller.token.creating_grant(self.now), &req, self.now) {
            Ok(_) if unknown_key_ids && caller.token.grant.key_ids.is_some() => Err(Escalation::KeyIds),
            other => other,
        };
        let mut rights = match derived {
            Ok(g) => g,
            Err(esc) => return Err(self.forbid(&caller, esc.message()).await),
        };
        if let Some(ids) = &req.key_ids {
            let tenant = &caller.token.tenant_id;
            let all_exist =
                !unknown_key_ids && ids.iter().all(|id| fetched.keys.get(id).is_some_and(|k| &k.tenant_id == tenant));
            if !all_exist {
                return Err(ApiError::bad("keyIds", "names a key that does not exist"));
            }
        }
        // No exchanged token outlives the identity's creator.
        rights.expires_at = caller.token.creating_grant(self.now).expires_at;
        let (created_by, ancestors) = caller.token.parent_of_new();
        let identity = IdentityRecord {
            identity_id: IdentityId::generate(),
            tenant_id: caller.token.tenant_id.clone(),
            name,
            rule,
            rights,
            token_ttl,
            created_at: self.now,
            created_by,
            ancestors,
            deleted_at: None,
        };
        let mut audit = self.event(&caller, AuditAction::IdentityCreate, None);
        audit.identity_id = Some(identity.identity_id.clone());
        self.app.store.create_identity(&identity, &audit).await.map_err(|e| match e {
            StoreError::Conflict(Conflict::IssuerNotLive) => ApiError::Unauthorized,
            StoreError::Conflict(Conflict::Exists) => ApiError::internal("a fresh identity id collided"),
            e => e.into(),
        })?;
        Ok(ApiResponse::json(201, &IdentityView::from(&identity)))
    }

    pub(crate) async fn list_identities(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::TokensRead).await?;
        let paging = self.req.paging()?;
        let (store, token) = (&self.app.store, &caller.token);
        let (found, cursor) = fill_page(
            paging.limit,
            paging.cursor,
            |n, c| async move { store.list_identities(&token.tenant_id, n, c.as_deref()).await },
            |i: &IdentityRecord| {
                i.deleted_at.is_none() && i.visible_to(token.acting_as(), token.is_root(), &token.tenant_id)
            },
        )
        .await?;
        let views: Vec<IdentityView> = found.iter().map(IdentityView::from).collect();
        Ok(ApiResponse::json(200, &serde_json::json!({"identities": views, "nextCursor": cursor})))
    }

    pub(crate) async fn get_identity(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::TokensRead).await?;
        let identity = self.visible_identity(&caller.token, id).await?.filter(|i| i.deleted_at.is_none());
        let identity = identity.ok_or(NO_SUCH_IDENTITY)?;
        Ok(ApiResponse::json(200, &IdentityView::from(&identity)))
    }

    /// Marks the identity deleted (no exchange from then on) and revokes
    /// every token exchanged through it, with their subtrees, before it
    /// answers. A second call answers 204 again and finishes a cascade that
    /// a failure cut short.
    pub(crate) async fn delete_identity(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::TokensWrite).await?;
        let identity = self.visible_identity(&caller.token, id).await?.ok_or(NO_SUCH_IDENTITY)?;
        let mut audit = self.event(&caller, AuditAction::IdentityDelete, None);
        audit.identity_id = Some(identity.identity_id.clone());
        let tenant = &caller.token.tenant_id;
        let issued = match self.app.store.delete_identity(tenant, &identity.identity_id, self.now, &audit).await {
            Ok(issued) => issued,
            Err(StoreError::NotFound) => return Err(NO_SUCH_IDENTITY),
            Err(e) => return Err(e.into()),
        };
        self.revoke_all(tenant, issued, HashSet::new()).await?;
        Ok(ApiResponse::no_content())
    }

    /// The identity `id` if the caller's token sees it (deleted ones
    /// included); `None` for every other case alike.
    async fn visible_identity(
        &self,
        token: &crate::store::TokenRecord,
        id: &str,
    ) -> Result<Option<IdentityRecord>, ApiError> {
        let Some(id) = IdentityId::parse(id) else { return Ok(None) };
        let found = self.app.store.get_identity(&id).await?;
        Ok(found.filter(|i| i.visible_to(token.acting_as(), token.is_root(), &token.tenant_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiRequest;

    fn body(json: Value) -> JsonObject {
        let req = ApiRequest {
            method: "POST".into(),
            content_type: Some("application/json".into()),
            body: json.to_string().into_bytes().into(),
            ..ApiRequest::default()
        };
        JsonObject::parse(&req, FIELDS).unwrap()
    }

    fn oidc() -> Value {
        serde_json::json!({"name": "deploy", "kind": "oidc", "issuer": "https://token.actions.githubusercontent.com",
            "audience": "ibyok:acme", "subject": "repo:acme/app:environment:production", "scopes": ["keys:read"]})
    }

    fn with(mut v: Value, k: &str, x: Value) -> Value {
        v[k] = x;
        v
    }

    #[test]
    fn rules_parse_with_their_defaults() {
        let (rule, ttl) = parse_rule(&body(oidc()), false).unwrap();
        assert_eq!(ttl, DEFAULT_TOKEN_TTL);
        let TrustRule::Oidc(o) = rule else { panic!("oidc") };
        assert_eq!((o.subject_match, o.bound_claims.len()), (SubjectMatch::Exact, 0));
        let claims = with(oidc(), "boundClaims", serde_json::json!({"repository_id": "1", "ref": ["a", "b"]}));
        let (TrustRule::Oidc(o), _) = parse_rule(&body(claims), false).unwrap() else { panic!("oidc") };
        assert_eq!(o.bound_claims["ref"], ["a", "b"]);
        let aws = serde_json::json!({"name": "n", "kind": "aws", "awsAccountId": "123456789012",
            "awsRoleName": "deployer", "scopes": ["keys:read"], "tokenTtl": 60});
        assert!(matches!(parse_rule(&body(aws), false), Ok((TrustRule::Aws(_), 60))));
    }

    #[test]
    fn bad_rules_name_their_field() {
        let cases = [
            (with(oidc(), "kind", "ldap".into()), "kind"),
            (with(oidc(), "issuer", "http://issuer.example".into()), "issuer"),
            (with(oidc(), "issuer", "http://127.0.0.1:9000".into()), "issuer"),
            (with(oidc(), "issuer", "https://i.example/?x=1".into()), "issuer"),
            (with(oidc(), "audience", "".into()), "audience"),
            (with(oidc(), "subject", " repo:x".into()), "subject"),
            (with(oidc(), "subjectMatch", "regex".into()), "subjectMatch"),
            (with(oidc(), "boundClaims", serde_json::json!({"ref": []})), "boundClaims"),
            (with(oidc(), "boundClaims", serde_json::json!({"ref": [1]})), "boundClaims"),
            (with(oidc(), "boundClaims", serde_json::json!(["ref"])), "boundClaims"),
            (with(oidc(), "awsAccountId", "123456789012".into()), "awsAccountId"),
            (with(oidc(), "tokenTtl", 59.into()), "tokenTtl"),
            (with(oidc(), "tokenTtl", 3601.into()), "tokenTtl"),
            (serde_json::json!({"kind": "aws", "awsAccountId": "12345", "awsRoleName": "r"}), "awsAccountId"),
            (serde_json::json!({"kind": "aws", "awsAccountId": "123456789012", "awsRoleName": "a/b"}), "awsRoleName"),
            (
                serde_json::json!({"kind": "aws", "awsAccountId": "123456789012", "awsRoleName": "r", "issuer": "x"}),
                "issuer",
            ),
        ];
        for (v, field) in cases {
            let err = parse_rule(&body(v.clone()), false).unwrap_err();
            assert!(err.to_string().starts_with(field), "{v}: {err}");
        }
        let dev = with(oidc(), "issuer", "http://127.0.0.1:9000".into());
        assert!(parse_rule(&body(dev), true).is_ok());
    }

    #[test]
    fn bound_claims_are_bounded_in_characters_not_bytes() {
        let claims = |name: String, value: String| with(oidc(), "boundClaims", serde_json::json!({ name: value }));
        let (name, value) = ("é".repeat(128), "ü".repeat(512));
        assert!(parse_rule(&body(claims(name.clone(), value.clone())), false).is_ok());
        let err = parse_rule(&body(claims(name.clone() + "é", value.clone())), false).unwrap_err();
        assert!(err.to_string().starts_with("boundClaims"), "{err}");
        let err = parse_rule(&body(claims(name, value + "ü")), false).unwrap_err();
        assert_eq!(err.to_string(), "boundClaims: values must be 1 to 512 characters");
    }
}
