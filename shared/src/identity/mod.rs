//! Workload identities: trust rules by which a credential that a workload
//! already holds (an OpenID Connect token from its CI system or cluster, or
//! its AWS IAM role) is exchanged for a short-lived `ibyok_` token, so that
//! no long-lived token is stored where the workload runs.
//!
//! - [`IdentityRecord`] and its [`TrustRule`]: what may exchange, for what.
//! - [`jwt`]: the JWT checks (signature by a pinned asymmetric key, `iss`,
//!   `aud`, times, `sub`, bound claims), each refusal with its [`Denied`]
//!   cause.
//! - [`jwks`]: the issuers' keys, discovered and cached per instance.
//! - [`sts`]: the AWS exchange: the `sts:GetCallerIdentity` request rebuilt
//!   by the server, and its answer parsed strictly.
//!
//! The routes are in `api::identities`; the storage port is
//! [`crate::store::identities::IdentityStore`].

pub mod jwks;
pub mod jwt;
pub mod sts;

use crate::clock::Timestamp;
use crate::ids::{IdentityId, TenantId, TokenId};
use crate::token::{Grant, Scope, Scopes};
use std::collections::BTreeMap;

/// `tokenTtl` bounds, in seconds, and its default.
pub const MIN_TOKEN_TTL: i64 = 60;
pub const MAX_TOKEN_TTL: i64 = 3_600;
pub const DEFAULT_TOKEN_TTL: i64 = 900;

/// One trust rule, in its creator's subtree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRecord {
    pub identity_id: IdentityId,
    pub tenant_id: TenantId,
    pub name: String,
    pub rule: TrustRule,
    /// The rights of every token exchanged through this identity, as its
    /// creator could grant them (bounded like a child token's); `expires_at`
    /// is the creator's expiry, which no exchanged token outlives.
    pub rights: Grant,
    /// Seconds an exchanged token lives.
    pub token_ttl: i64,
    pub created_at: Timestamp,
    /// The token that created it: exchanged tokens are its children, so that
    /// revoking it (or anything above it) ends them; an exchange requires it
    /// live.
    pub created_by: TokenId,
    /// The creator's ancestors and the creator, root first: who sees it.
    pub ancestors: Vec<TokenId>,
    /// Set by `DELETE /identities/{id}`: no exchange from then on; the
    /// record stays (hidden) until every token it issued has expired.
    pub deleted_at: Option<Timestamp>,
}

impl IdentityRecord {
    /// The kind, as the contract names it.
    pub fn kind(&self) -> &'static str {
        match self.rule {
            TrustRule::Oidc(_) => "oidc",
            TrustRule::Aws(_) => "aws",
        }
    }

    /// The grant of a token exchanged at `now`: the identity's rights
    /// without `tokens:write` (an exchanged token never mints tokens), for
    /// `token_ttl` seconds, never past the creator's expiry.
    pub fn exchanged_grant(&self, now: Timestamp) -> Grant {
        Grant {
            scopes: self.rights.scopes.iter().filter(|s| *s != Scope::TokensWrite).collect::<Scopes>(),
            expires_at: now.plus_seconds(self.token_ttl).min(self.rights.expires_at),
            ..self.rights.clone()
        }
    }

    /// Whether a caller whose token is `token` (with `ancestors` above it)
    /// sees this identity: a root sees its tenant's; another token those it
    /// or its descendants created. The token tree's rule.
    pub fn visible_to(&self, token: &TokenId, token_is_root: bool, tenant: &TenantId) -> bool {
        &self.tenant_id == tenant && (token_is_root || self.created_by == *token || self.ancestors.contains(token))
    }
}

/// Who may exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustRule {
    Oidc(OidcRule),
    Aws(AwsRule),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcRule {
    /// Exact `iss`; discovery at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// Required in `aud` (exact).
    pub audience: String,
    pub subject: String,
    pub subject_match: SubjectMatch,
    /// Claim name → the allowed values (exact); every one must be present.
    pub bound_claims: BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SubjectMatch {
    #[default]
    Exact,
    /// `*` stands for one or more characters within one segment: never a
    /// `:` or a `/`, the separators of the subjects that CI systems and
    /// clusters issue (`repo:acme/app:environment:production`,
    /// `system:serviceaccount:ns:name`).
    Glob,
}

impl SubjectMatch {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectMatch::Exact => "exact",
            SubjectMatch::Glob => "glob",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "exact" => Some(SubjectMatch::Exact),
            "glob" => Some(SubjectMatch::Glob),
            _ => None,
        }
    }

    /// Whether `subject` matches `pattern`.
    pub fn matches(self, pattern: &str, subject: &str) -> bool {
        match self {
            SubjectMatch::Exact => pattern == subject,
            SubjectMatch::Glob => glob_matches(pattern.as_bytes(), subject.as_bytes()),
        }
    }
}

fn is_separator(b: u8) -> bool {
    b == b':' || b == b'/'
}

/// `*` matches one or more bytes, none a separator; every other byte matches
/// itself. Run as a set of positions in the pattern over the subject's
/// bytes (`*` is "one, then any number"): linear in each, whatever the
/// pattern, so that no pattern and subject can make it slow.
fn glob_matches(pattern: &[u8], subject: &[u8]) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Lit(u8),
        One,
        Many,
    }
    let toks: Vec<Tok> =
        pattern.iter().flat_map(|b| if *b == b'*' { vec![Tok::One, Tok::Many] } else { vec![Tok::Lit(*b)] }).collect();
    let close = |states: &mut Vec<bool>| {
        for i in 0..toks.len() {
            if states[i] && toks[i] == Tok::Many {
                states[i + 1] = true;
            }
        }
    };
    let mut states = vec![false; toks.len() + 1];
    states[0] = true;
    close(&mut states);
    for &c in subject {
        let mut next = vec![false; toks.len() + 1];
        for (i, t) in toks.iter().enumerate() {
            if !states[i] {
                continue;
            }
            match t {
                Tok::Lit(b) if *b == c => next[i + 1] = true,
                Tok::One if !is_separator(c) => next[i + 1] = true,
                Tok::Many if !is_separator(c) => next[i] = true,
                _ => {}
            }
        }
        close(&mut next);
        if !next.contains(&true) {
            return false;
        }
        states = next;
    }
    states[toks.len()]
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsRule {
    /// 12 digits.
    pub account_id: String,
    /// An assumed-role session of this role matches (the session name is
    /// never looked at).
    pub role_name: String,
}

/// Why an exchange was refused: recorded in the `auth.denied` event of the
/// identity's tenant, never answered (every refusal is the same 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// Not three base64url parts of JSON.
    Malformed,
    /// `none`, an HMAC, or an algorithm not on the list.
    Algorithm,
    /// No key of the issuer under this `kid`.
    UnknownKey,
    /// The key's type, curve or own `alg` does not fit the token's `alg`.
    KeyMismatch,
    Signature,
    Issuer,
    Audience,
    Expired,
    NotYetValid,
    IssuedInFuture,
    /// `exp − iat` over 24 hours, or either missing.
    Lifetime,
    Subject,
    /// A bound claim missing or other than allowed (its name in `claim`).
    BoundClaim,
    Replayed,
    /// The identity is of the other kind.
    Kind,
    /// The creator of the identity is no longer live.
    CreatorNotLive,
    /// AWS: the request is not the one the server rebuilds (body, URL,
    /// headers), or its signature does not cover the server id.
    Request,
    ServerId,
    StaleDate,
    /// AWS: STS refused the signature.
    StsRefused,
    /// AWS: the caller is not the identity's account and role.
    Principal,
    /// Sign-in: the ID token's `nonce` is not the one the sign-in sent.
    Nonce,
}

impl Denied {
    pub fn as_str(self) -> &'static str {
        match self {
            Denied::Malformed => "malformed",
            Denied::Algorithm => "algorithm",
            Denied::UnknownKey => "unknown_kid",
            Denied::KeyMismatch => "key_mismatch",
            Denied::Signature => "signature",
            Denied::Issuer => "issuer",
            Denied::Audience => "audience",
            Denied::Expired => "expired",
            Denied::NotYetValid => "not_yet_valid",
            Denied::IssuedInFuture => "issued_in_future",
            Denied::Lifetime => "lifetime",
            Denied::Subject => "subject",
            Denied::BoundClaim => "bound_claim",
            Denied::Replayed => "replayed_jti",
            Denied::Kind => "identity_kind",
            Denied::CreatorNotLive => "creator_not_live",
            Denied::Request => "request",
            Denied::ServerId => "server_id",
            Denied::StaleDate => "stale_date",
            Denied::StsRefused => "sts_refused",
            Denied::Principal => "principal",
            Denied::Nonce => "nonce",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_stays_within_one_segment() {
        let g = SubjectMatch::Glob;
        let cases = [
            ("repo:acme/*:environment:production", "repo:acme/app:environment:production", true),
            ("repo:acme/*:environment:production", "repo:acme/app:environment:staging", false),
            ("repo:acme/*:environment:production", "repo:acme/a:b:environment:production", false),
            ("repo:acme/*:environment:production", "repo:acme/:environment:production", false),
            ("repo:acme/app:ref:refs/heads/*", "repo:acme/app:ref:refs/heads/main", true),
            ("repo:acme/app:ref:refs/heads/*", "repo:acme/app:ref:refs/heads/feature/x", false),
            ("repo:*:ref:refs/heads/main", "repo:acme/app:ref:refs/heads/main", false),
            ("system:serviceaccount:ci:*", "system:serviceaccount:ci:deployer", true),
            ("a*c", "abbbc", true),
            ("a*c", "ac", false),
            ("exact", "exact", true),
        ];
        for (pattern, subject, want) in cases {
            assert_eq!(g.matches(pattern, subject), want, "{pattern} ~ {subject}");
        }
        assert!(!SubjectMatch::Exact.matches("repo:acme/*", "repo:acme/app"));
        assert!(SubjectMatch::Exact.matches("repo:acme/*", "repo:acme/*"));
    }
}
