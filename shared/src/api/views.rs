//! The JSON shapes of the contract's responses.

use crate::clock::Timestamp;
use crate::identity::{IdentityRecord, TrustRule};
use crate::ids::{IdentityId, KeyId, TokenId};
use crate::mode::ModeOverrides;
use crate::store::{KeyRecord, KeyVersion, Stage, TokenRecord};
use crate::token::Scope;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyView<'a> {
    pub key_id: &'a KeyId,
    pub name: &'a str,
    pub llm_type: &'a str,
    pub preview: &'a str,
    pub mode_overrides: &'a ModeOverrides,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    /// The current version's number.
    pub version: u64,
}

/// One version of a key's value (`GET /keys/{keyId}/versions`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionView<'a> {
    pub version: u64,
    pub stage: Stage,
    pub created_at: Timestamp,
    pub retires_at: Option<Timestamp>,
    pub preview: &'a str,
}

impl<'a> VersionView<'a> {
    pub fn new(v: &'a KeyVersion, stage: Stage) -> Self {
        Self { version: v.number, stage, created_at: v.created_at, retires_at: v.retires_at, preview: &v.preview }
    }
}

impl<'a> From<&'a KeyRecord> for KeyView<'a> {
    fn from(k: &'a KeyRecord) -> Self {
        Self {
            key_id: &k.key_id,
            name: &k.name,
            llm_type: &k.llm_type,
            preview: &k.current.preview,
            mode_overrides: &k.mode_overrides,
            created_at: k.created_at,
            updated_at: k.updated_at,
            last_used_at: k.last_used_at,
            version: k.current.number,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenView<'a> {
    pub token_id: &'a TokenId,
    /// Only in the response that creates the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
    pub name: &'a str,
    pub scopes: Vec<Scope>,
    pub key_ids: Option<&'a [KeyId]>,
    pub allowed_cidrs: Option<Vec<String>>,
    /// Requests a minute; `null` when unlimited.
    pub rate_limit: Option<u32>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub issued_by: Option<&'a TokenId>,
    /// The workload identity the token was exchanged through.
    pub identity_id: Option<&'a IdentityId>,
    /// The member a session, or a member's anchor (no `issuedBy`), stands
    /// for; absent on other tokens. A member's tokens and identities are
    /// those issued by (created by) their anchor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<&'a crate::ids::MemberId>,
    /// Listings only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Option<Timestamp>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Option<Timestamp>>,
}

impl<'a> TokenView<'a> {
    /// The listing shape (with `lastUsedAt` and `revokedAt`).
    pub fn listed(t: &'a TokenRecord) -> Self {
        Self { last_used_at: Some(t.last_used_at), revoked_at: Some(t.revoked_at), ..Self::created(t, None) }
    }

    /// The creation shape (with `token`, once).
    pub fn created(t: &'a TokenRecord, token: Option<&'a str>) -> Self {
        Self {
            token_id: &t.token_id,
            token,
            name: &t.name,
            scopes: t.grant.scopes.iter().collect(),
            key_ids: t.grant.key_ids.as_deref(),
            allowed_cidrs: t.grant.allowed_cidrs.as_ref().map(|v| v.iter().map(ToString::to_string).collect()),
            rate_limit: t.grant.rate_limit,
            created_at: t.created_at,
            expires_at: t.grant.expires_at,
            issued_by: t.issued_by.as_ref(),
            identity_id: t.identity_id.as_ref(),
            member_id: t.member_id.as_ref(),
            last_used_at: None,
            revoked_at: None,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityView<'a> {
    pub identity_id: &'a IdentityId,
    pub name: &'a str,
    pub kind: &'static str,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub subject_match: Option<&'static str>,
    pub bound_claims: Option<&'a std::collections::BTreeMap<String, Vec<String>>>,
    pub aws_account_id: Option<&'a str>,
    pub aws_role_name: Option<&'a str>,
    pub scopes: Vec<Scope>,
    pub key_ids: Option<&'a [KeyId]>,
    pub allowed_cidrs: Option<Vec<String>>,
    pub rate_limit: Option<u32>,
    pub token_ttl: i64,
    pub created_at: Timestamp,
    pub created_by: &'a TokenId,
}

impl<'a> From<&'a IdentityRecord> for IdentityView<'a> {
    fn from(i: &'a IdentityRecord) -> Self {
        let (oidc, aws) = match &i.rule {
            TrustRule::Oidc(o) => (Some(o), None),
            TrustRule::Aws(a) => (None, Some(a)),
        };
        Self {
            identity_id: &i.identity_id,
            name: &i.name,
            kind: i.kind(),
            issuer: oidc.map(|o| o.issuer.as_str()),
            audience: oidc.map(|o| o.audience.as_str()),
            subject: oidc.map(|o| o.subject.as_str()),
            subject_match: oidc.map(|o| o.subject_match.as_str()),
            bound_claims: oidc.map(|o| &o.bound_claims),
            aws_account_id: aws.map(|a| a.account_id.as_str()),
            aws_role_name: aws.map(|a| a.role_name.as_str()),
            scopes: i.rights.scopes.iter().collect(),
            key_ids: i.rights.key_ids.as_deref(),
            allowed_cidrs: i.rights.allowed_cidrs.as_ref().map(|v| v.iter().map(ToString::to_string).collect()),
            rate_limit: i.rights.rate_limit,
            token_ttl: i.token_ttl,
            created_at: i.created_at,
            created_by: &i.created_by,
        }
    }
}
