//! The identities aggregate in memory, under the store's one lock (an
//! exchange creates a token: both aggregates change in one write).

use super::{check_issuer, decode_cursor, insert_token, page, push_audit, token_landed, MemoryStore};
use crate::clock::Timestamp;
use crate::identity::{AwsRule, IdentityRecord, OidcRule, SubjectMatch, TrustRule};
use crate::ids::{IdentityId, KeyId, TenantId, TokenId};
use crate::store::identities::{IdentityStore, JtiClaim};
use crate::store::{AuditEvent, Conflict, Page, Revocable, StoreError, TokenRecord};
use crate::token::{Grant, Scope, Scopes};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
pub(super) struct Identities {
    records: BTreeMap<IdentityId, IdentityRecord>,
    /// The tokens exchanged through each identity.
    tokens: BTreeMap<IdentityId, BTreeSet<TokenId>>,
    /// Claimed `jti`s ([`JtiClaim::key`]) and until when (epoch ms).
    jti: BTreeMap<String, i64>,
}

#[async_trait]
impl IdentityStore for MemoryStore {
    async fn create_identity(&self, identity: &IdentityRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(existing) = s.identities.records.get(&identity.identity_id) {
                return match existing == identity {
                    true => Ok(()),
                    false => Err(StoreError::Conflict(Conflict::Exists)),
                };
            }
            if !s.tokens.get(&identity.created_by).is_some_and(|t| t.is_live(identity.created_at)) {
                return Err(StoreError::Conflict(Conflict::IssuerNotLive));
            }
            s.identities.records.insert(identity.identity_id.clone(), identity.clone());
            push_audit(s, audit);
            Ok(())
        })
    }

    async fn get_identity(&self, id: &IdentityId) -> Result<Option<IdentityRecord>, StoreError> {
        self.read(|s| s.identities.records.get(id).cloned())
    }

    async fn list_identities(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<IdentityRecord>, StoreError> {
        let after = decode_cursor(tenant, cursor)?;
        self.read(|s| {
            let mut all: Vec<_> = s.identities.records.values().filter(|i| &i.tenant_id == tenant).collect();
            all.sort_by_key(|i| (i.created_at, i.identity_id.clone()));
            let items = all.into_iter().map(|i| (format!("{:020}{}", i.created_at.millis(), i.identity_id), i.clone()));
            page(tenant, items, limit, after)
        })
    }

    async fn delete_identity(
        &self,
        tenant: &TenantId,
        id: &IdentityId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<Vec<Revocable>, StoreError> {
        self.with(|s| {
            let record =
                s.identities.records.get_mut(id).filter(|i| &i.tenant_id == tenant).ok_or(StoreError::NotFound)?;
            if record.deleted_at.is_none() {
                record.deleted_at = Some(at);
                push_audit(s, audit);
            }
            let issued = s.identities.tokens.get(id).into_iter().flatten();
            Ok(issued
                .map(|t| Revocable { token_id: t.clone(), expires_at: s.tokens.get(t).map(|r| r.grant.expires_at) })
                .collect())
        })
    }

    async fn exchange(
        &self,
        identity: &IdentityId,
        token: &TokenRecord,
        jti: Option<&JtiClaim>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            if token_landed(s, token)? {
                return Ok(());
            }
            check_issuer(s, token)?;
            if s.identities.records.get(identity).is_none_or(|i| i.deleted_at.is_some()) {
                return Err(StoreError::Conflict(Conflict::IssuerNotLive));
            }
            let now = token.created_at.millis();
            if let Some(claim) = jti {
                if s.identities.jti.get(&claim.key).is_some_and(|until| *until > now) {
                    return Err(StoreError::Conflict(Conflict::Replayed));
                }
                // Expired claims go as new ones come (DynamoDB's TTL).
                s.identities.jti.retain(|_, until| *until > now);
                s.identities.jti.insert(claim.key.clone(), claim.until.millis());
            }
            insert_token(s, token);
            s.identities.tokens.entry(identity.clone()).or_default().insert(token.token_id.clone());
            push_audit(s, audit);
            Ok(())
        })
    }
}

/// An identity as the data file keeps it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IdentityRow {
    identity_id: String,
    tenant_id: String,
    name: String,
    kind: String,
    issuer: Option<String>,
    audience: Option<String>,
    subject: Option<String>,
    subject_match: Option<String>,
    #[serde(default)]
    bound_claims: BTreeMap<String, Vec<String>>,
    aws_account_id: Option<String>,
    aws_role_name: Option<String>,
    scopes: Vec<Scope>,
    rights_expire_at: i64,
    key_ids: Option<Vec<String>>,
    allowed_cidrs: Option<Vec<String>>,
    rate_limit: Option<u32>,
    token_ttl: i64,
    created_at: i64,
    created_by: String,
    ancestors: Vec<String>,
    deleted_at: Option<i64>,
    tokens: Vec<String>,
}

/// The data file's part of the aggregate: identities with their tokens
/// (the `jti` claims are not kept: a restart of the development server
/// is not a replay window worth a file).
impl Identities {
    pub(super) fn rows(&self) -> Vec<IdentityRow> {
        self.records
            .values()
            .map(|i| {
                let (oidc, aws) = match &i.rule {
                    TrustRule::Oidc(o) => (Some(o), None),
                    TrustRule::Aws(a) => (None, Some(a)),
                };
                IdentityRow {
                    identity_id: i.identity_id.to_string(),
                    tenant_id: i.tenant_id.to_string(),
                    name: i.name.clone(),
                    kind: i.kind().to_owned(),
                    issuer: oidc.map(|o| o.issuer.clone()),
                    audience: oidc.map(|o| o.audience.clone()),
                    subject: oidc.map(|o| o.subject.clone()),
                    subject_match: oidc.map(|o| o.subject_match.as_str().to_owned()),
                    bound_claims: oidc.map(|o| o.bound_claims.clone()).unwrap_or_default(),
                    aws_account_id: aws.map(|a| a.account_id.clone()),
                    aws_role_name: aws.map(|a| a.role_name.clone()),
                    scopes: i.rights.scopes.iter().collect(),
                    rights_expire_at: i.rights.expires_at.millis(),
                    key_ids: i.rights.key_ids.as_ref().map(|v| v.iter().map(ToString::to_string).collect()),
                    allowed_cidrs: i.rights.allowed_cidrs.as_ref().map(|v| v.iter().map(ToString::to_string).collect()),
                    rate_limit: i.rights.rate_limit,
                    token_ttl: i.token_ttl,
                    created_at: i.created_at.millis(),
                    created_by: i.created_by.to_string(),
                    ancestors: i.ancestors.iter().map(ToString::to_string).collect(),
                    deleted_at: i.deleted_at.map(Timestamp::millis),
                    tokens: self.tokens.get(&i.identity_id).into_iter().flatten().map(ToString::to_string).collect(),
                }
            })
            .collect()
    }

    pub(super) fn from_rows(rows: Vec<IdentityRow>) -> Option<Self> {
        let mut out = Identities::default();
        for r in rows {
            let rule = match r.kind.as_str() {
                "oidc" => TrustRule::Oidc(OidcRule {
                    issuer: r.issuer?,
                    audience: r.audience?,
                    subject: r.subject?,
                    subject_match: SubjectMatch::parse(r.subject_match.as_deref()?)?,
                    bound_claims: r.bound_claims,
                }),
                "aws" => TrustRule::Aws(AwsRule { account_id: r.aws_account_id?, role_name: r.aws_role_name? }),
                _ => return None,
            };
            let allowed_cidrs = match r.allowed_cidrs {
                None => None,
                Some(v) => Some(v.iter().map(|c| c.parse().ok()).collect::<Option<Vec<_>>>()?),
            };
            let id = IdentityId::from_stored(r.identity_id);
            out.tokens.insert(id.clone(), r.tokens.into_iter().map(TokenId::from_stored).collect());
            out.records.insert(
                id.clone(),
                IdentityRecord {
                    identity_id: id,
                    tenant_id: TenantId::from_stored(r.tenant_id),
                    name: r.name,
                    rule,
                    rights: Grant {
                        scopes: r.scopes.into_iter().collect::<Scopes>(),
                        expires_at: Timestamp::from_millis(r.rights_expire_at),
                        key_ids: r.key_ids.map(|v| v.into_iter().map(KeyId::from_stored).collect()),
                        allowed_cidrs,
                        rate_limit: r.rate_limit,
                    },
                    token_ttl: r.token_ttl,
                    created_at: Timestamp::from_millis(r.created_at),
                    created_by: TokenId::from_stored(r.created_by),
                    ancestors: r.ancestors.into_iter().map(TokenId::from_stored).collect(),
                    deleted_at: r.deleted_at.map(Timestamp::from_millis),
                },
            );
        }
        Some(out)
    }
}
