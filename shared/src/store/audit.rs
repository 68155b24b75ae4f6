//! The audit log: one event per request that did something, or was
//! refused, with who did it (`actor`).

use super::{Page, StoreError, TokenRecord};
use crate::clock::Timestamp;
use crate::ids::{IdentityId, KeyId, TenantId, TokenId};
use crate::mode::{Environment, Mode};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditAction {
    #[serde(rename = "key.read")]
    KeyRead,
    #[serde(rename = "key.create")]
    KeyCreate,
    #[serde(rename = "key.update")]
    KeyUpdate,
    #[serde(rename = "key.rotate")]
    KeyRotate,
    #[serde(rename = "key.promote")]
    KeyPromote,
    #[serde(rename = "key.delete")]
    KeyDelete,
    #[serde(rename = "token.create")]
    TokenCreate,
    #[serde(rename = "token.revoke")]
    TokenRevoke,
    /// A token a secret scanning service found in public, revoked with its
    /// descendants (`detail`: where it was found, as JSON `{url, source}`).
    #[serde(rename = "token.leaked")]
    TokenLeaked,
    #[serde(rename = "settings.update")]
    SettingsUpdate,
    #[serde(rename = "auth.denied")]
    AuthDenied,
    /// The first request of a token refused by its rate limit in a minute.
    #[serde(rename = "auth.limited")]
    AuthLimited,
    #[serde(rename = "identity.create")]
    IdentityCreate,
    #[serde(rename = "identity.delete")]
    IdentityDelete,
    /// A workload's credential exchanged for a token (`detail`: the JWT's
    /// subject or the role ARN).
    #[serde(rename = "auth.exchange")]
    AuthExchange,
    /// A person invited (`detail`: the invitation and the role).
    #[serde(rename = "member.create")]
    MemberCreate,
    /// A member's role changed (`detail`: from and to).
    #[serde(rename = "member.update")]
    MemberUpdate,
    /// A member removed (`detail`: the invitation and the role).
    #[serde(rename = "member.delete")]
    MemberDelete,
    /// A person's sign-in (`detail`: the provider, and the person, or
    /// why they were refused).
    #[serde(rename = "auth.signin")]
    AuthSignin,
}

/// Who did what an audit event records (`actor`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    pub kind: ActorKind,
    /// The token that made the request (for an exchange, the token made).
    pub token_id: Option<TokenId>,
    pub member_id: Option<String>,
    pub identity_id: Option<IdentityId>,
    /// The token's name (for an exchanged token: the identity's name and
    /// the subject or role session).
    pub name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    Token,
    Session,
    Identity,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Token => "token",
            ActorKind::Session => "session",
            ActorKind::Identity => "identity",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "token" => Some(ActorKind::Token),
            "session" => Some(ActorKind::Session),
            "identity" => Some(ActorKind::Identity),
            _ => None,
        }
    }
}

impl Actor {
    /// The actor of a request that `token` authenticated.
    pub fn of(token: &TokenRecord) -> Self {
        let session = token.is_session();
        let kind = match (token.identity_id.is_some(), session) {
            (true, _) => ActorKind::Identity,
            (false, true) => ActorKind::Session,
            (false, false) => ActorKind::Token,
        };
        // A session is named after its member (`Ana (session)`): the actor
        // is the person.
        let name = match session {
            true => token.name.strip_suffix(crate::member::SESSION_SUFFIX).unwrap_or(&token.name),
            false => &token.name,
        };
        Actor {
            kind,
            token_id: Some(token.token_id.clone()),
            member_id: token.member_id.as_ref().map(ToString::to_string),
            identity_id: token.identity_id.clone(),
            name: Some(name.to_owned()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Denied,
}

/// One audit event, as the contract lists its fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    #[serde(skip)]
    pub tenant_id: Option<TenantId>,
    pub at: Timestamp,
    pub request_id: String,
    pub action: AuditAction,
    pub token_id: Option<TokenId>,
    pub key_id: Option<KeyId>,
    /// The version rotated to, promoted, or read.
    pub version: Option<u64>,
    pub environment: Option<Environment>,
    pub effective_mode: Option<Mode>,
    pub outcome: Outcome,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Who made the request; `null` on events recorded before actors were.
    #[serde(default)]
    pub actor: Option<Actor>,
    /// The identity a workload exchanged through or was refused by.
    #[serde(default)]
    pub identity_id: Option<IdentityId>,
    /// `auth.exchange`: the subject or role ARN; an exchange's
    /// `auth.denied`: the check that failed.
    #[serde(default)]
    pub detail: Option<String>,
    /// Orders events of one millisecond and names the event to the store
    /// ([`crate::ids::new_event_id`]); not shown.
    #[serde(skip)]
    pub event_id: String,
    /// When the store may drop the event (the retention period).
    #[serde(skip)]
    pub retain_until: Option<Timestamp>,
}

impl AuditEvent {
    /// An event of the operator's (no request, no token behind it: `ibyok
    /// admin`), kept `retention_days`.
    pub fn by_operator(tenant: &TenantId, action: AuditAction, at: Timestamp, retention_days: i64) -> Self {
        AuditEvent {
            tenant_id: Some(tenant.clone()),
            at,
            request_id: crate::ids::new_request_id(),
            action,
            token_id: None,
            key_id: None,
            version: None,
            environment: None,
            effective_mode: None,
            outcome: Outcome::Ok,
            source_ip: None,
            user_agent: None,
            actor: None,
            identity_id: None,
            detail: None,
            event_id: crate::ids::new_event_id(),
            retain_until: Some(at.plus_seconds(retention_days * 86_400)),
        }
    }
}

/// The audit shard of an event (`0..AUDIT_SHARDS`), from its id alone:
/// FNV-1a of the id's bytes. The DynamoDB adapter keys the event under
/// `<tenantId>#<shard>`; the digests are per shard.
pub fn audit_shard(event_id: &str) -> u32 {
    let hash = event_id.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % super::schema::AUDIT_SHARDS
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// One round trip.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// One round trip: deletes an event written beside an operation that
    /// then did not happen (a gone event is fine), so that no event
    /// describes it. Not for reads: [`ReadStore::unrecord_read`](super::ReadStore::unrecord_read) takes those back.
    async fn retract_event(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// One round trip, newest first.
    async fn list_audit(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>, StoreError>;
}
