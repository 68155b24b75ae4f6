//! The tokens aggregate: a token's record (never the token: its verifier),
//! the token tree (issuer, ancestors), listing filters, revocation and
//! purging.

use super::{AuditEvent, Page, PurgeReport, StoreError};
use crate::clock::Timestamp;
use crate::ids::{IdentityId, MemberId, TenantId, TokenId};
use crate::token::Grant;
use async_trait::async_trait;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub token_id: TokenId,
    pub tenant_id: TenantId,
    /// The stored verifier (a hash of the token), never the token.
    pub verifier: Vec<u8>,
    pub name: String,
    pub grant: Grant,
    pub created_at: Timestamp,
    pub issued_by: Option<TokenId>,
    /// Every token above this one, root first.
    pub ancestors: Vec<TokenId>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub uses: u64,
    /// The workload identity this token was exchanged through, if any.
    pub identity_id: Option<IdentityId>,
    /// The member this token stands for: set on a member's *anchor* (the
    /// unpresentable token under which everything the member makes is
    /// entered, see [`crate::member`]) and on their sign-in sessions, which
    /// are the anchor's children. Never on what a session creates.
    pub member_id: Option<MemberId>,
}

impl TokenRecord {
    /// A new token of `tenant` named `name` with `grant`, made at `now`
    /// below `ancestors` (root first; the last is its issuer; none: a
    /// root, or a member's anchor when `member` is given), and its secret.
    pub fn fresh(
        tenant: &TenantId,
        name: String,
        grant: Grant,
        ancestors: Vec<TokenId>,
        member: Option<MemberId>,
        now: Timestamp,
    ) -> (Self, crate::token::ParsedToken) {
        let parsed = crate::token::ParsedToken::generate();
        let record = TokenRecord {
            token_id: parsed.id().clone(),
            tenant_id: tenant.clone(),
            verifier: parsed.verifier().to_vec(),
            name,
            grant,
            created_at: now,
            issued_by: ancestors.last().cloned(),
            ancestors,
            revoked_at: None,
            last_used_at: None,
            uses: 0,
            identity_id: None,
            member_id: member,
        };
        (record, parsed)
    }

    /// A stored token as it stands now: a root (no issuer), the tenant's
    /// break-glass credential, holds every scope, scopes added since it was
    /// made included. Each adapter applies this as it decodes a token.
    pub fn as_loaded(mut self) -> Self {
        if self.is_root() {
            self.grant.scopes = crate::token::Scopes::all();
        }
        self
    }

    /// The tenant's root: issued by nobody, and no member's anchor (an
    /// anchor heads its member's tree the same way, with none of a root's
    /// reach).
    pub fn is_root(&self) -> bool {
        self.issued_by.is_none() && self.member_id.is_none()
    }

    /// Whether this token is a member's sign-in session: a child of the
    /// member's anchor.
    pub fn is_session(&self) -> bool {
        self.member_id.is_some() && self.issued_by.is_some()
    }

    /// The token in whose name this one acts in the tree: a session acts as
    /// its member's anchor (what a person creates is the member's, and
    /// outlives the session), any other token as itself.
    pub fn acting_as(&self) -> &TokenId {
        match (&self.issued_by, self.is_session()) {
            (Some(anchor), true) => anchor,
            _ => &self.token_id,
        }
    }

    /// Where a token or identity this one creates enters the tree: its
    /// issuer and ancestors (for a session, under the member's anchor).
    pub fn parent_of_new(&self) -> (TokenId, Vec<TokenId>) {
        if self.is_session() {
            (self.acting_as().clone(), self.ancestors.clone())
        } else {
            let mut ancestors = self.ancestors.clone();
            ancestors.push(self.token_id.clone());
            (self.token_id.clone(), ancestors)
        }
    }

    /// The rights this token can hand down at `now`: its grant, except that
    /// a session, bounded by its role's scopes, hands down an expiry up to a
    /// year like any token, not its own 12 hours (what a person creates
    /// outlives the session that created it).
    pub fn creating_grant(&self, now: Timestamp) -> Grant {
        let mut grant = self.grant.clone();
        if self.is_session() {
            grant.expires_at = now.plus_seconds(crate::member::SESSION_CREATES_FOR_SECONDS);
        }
        grant
    }

    /// Whether `self` may see or revoke `other`: a root reaches its whole
    /// tenant; any other token reaches itself and its descendants (a
    /// session: its member's).
    pub fn reaches(&self, other: &TokenRecord) -> bool {
        self.tenant_id == other.tenant_id
            && (self.is_root() || self.token_id == other.token_id || other.ancestors.contains(self.acting_as()))
    }

    /// The live-token rule: not revoked and not expired. Authentication, the
    /// planned read and both stores' conditional writes apply this rule (the
    /// DynamoDB adapter as a condition expression, `LIVE_TOKEN`, which the
    /// store contract suite holds to it).
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.grant.unexpired_at(now)
    }

    /// Live, revoked (whatever its expiry) or expired.
    pub fn state(&self, now: Timestamp) -> TokenState {
        match (self.revoked_at, self.grant.unexpired_at(now)) {
            (Some(_), _) => TokenState::Revoked,
            (None, false) => TokenState::Expired,
            (None, true) => TokenState::Live,
        }
    }

    /// When cleanup may delete this token: at expiry, or a grace period after
    /// its (first) revocation, whichever comes first; in whole seconds,
    /// rounded up. Revoking again never moves it.
    pub fn purge_second(&self, revoked_grace_seconds: i64) -> i64 {
        let at = match self.revoked_at {
            Some(r) => r.plus_seconds(revoked_grace_seconds).min(self.grant.expires_at),
            None => self.grant.expires_at,
        };
        at.ceil_seconds()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenState {
    Live,
    Revoked,
    Expired,
}

impl TokenState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(TokenState::Live),
            "revoked" => Some(TokenState::Revoked),
            "expired" => Some(TokenState::Expired),
            _ => None,
        }
    }
}

/// The filters of `GET /tokens`, ANDed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenFilter {
    /// Live tokens expiring within this many seconds.
    pub expiring_within: Option<i64>,
    /// Live tokens not used for this many seconds (counting from creation
    /// for a token never used).
    pub unused_for: Option<i64>,
    pub state: Option<TokenState>,
}

impl TokenFilter {
    pub fn matches(&self, t: &TokenRecord, now: Timestamp) -> bool {
        let live = t.is_live(now);
        self.expiring_within.is_none_or(|s| live && t.grant.expires_at <= now.plus_seconds(s))
            && self.unused_for.is_none_or(|s| live && t.last_used_at.unwrap_or(t.created_at) <= now.plus_seconds(-s))
            && self.state.is_none_or(|s| t.state(now) == s)
    }
}

/// A token to revoke: its id and, when known, its expiry (from its record,
/// or from its entry under its issuer), which spares the store a read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Revocable {
    pub token_id: TokenId,
    pub expires_at: Option<Timestamp>,
}

/// Tokens: creation in the tree, revocation, listing and purging.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// One round trip. `Conflict::Exists` if the id is taken (a retry of this
    /// very write, recognised by its verifier, is `Ok`). With an issuer,
    /// `Conflict::IssuerNotLive` unless the issuer is live at the token's
    /// creation (the live-token rule), and records the child on the issuer so
    /// that a later revocation finds it.
    async fn create_token(&self, token: &TokenRecord, audit: &AuditEvent) -> Result<(), StoreError>;

    /// One round trip (a second, to read its children, only if it issued
    /// any; a third when its expiry is not given and comes before the grace
    /// ends): marks the token revoked, keeping an earlier `revokedAt`, sets its purge time
    /// by [`TokenRecord::purge_second`] (a second revocation never moves it),
    /// and answers the ids of the tokens it issued.
    async fn revoke_token(
        &self,
        tenant: &TenantId,
        token: &Revocable,
        at: Timestamp,
        revoked_grace_seconds: i64,
    ) -> Result<Vec<Revocable>, StoreError>;

    /// Two round trips, as [`KeyStore::list_keys`](super::KeyStore::list_keys).
    async fn list_tokens(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<TokenRecord>, StoreError>;

    /// Deletes tokens whose purge second is at or before `now`'s, reading
    /// only those.
    async fn purge_tokens(&self, now: Timestamp) -> Result<PurgeReport, StoreError>;
}
