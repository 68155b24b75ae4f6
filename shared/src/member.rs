//! People: a tenant's members, their roles, and who may change them.
//!
//! A member is a person invited by their GitHub login or their email at an
//! OpenID provider, with a [`Role`]. An invitation binds to the person's
//! stable id (the GitHub user id, the OIDC `sub`) at their first sign-in,
//! so that a later change of login or email does not move it. Until then
//! `subject` is `None`.
//!
//! The rules, kept by the store in the same write as the change:
//! - one member per invitation handle per tenant ([`Invitee::key`]);
//! - a tenant never loses its last owner (a removal or a demotion of it is
//!   refused, 409);
//! - a caller grants no more than it holds: inviting as, or changing to, a
//!   role whose scopes the caller's token does not cover is refused (403),
//!   as a token may only mint a weaker token.
//!
//! The routes are in `api::members`; the storage port is
//! [`crate::store::members::MemberStore`].

use crate::clock::Timestamp;
use crate::ids::{MemberId, TenantId, TokenId};
use crate::token::{Scope, Scopes};

/// The four roles and their scopes (API.md, *Members*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Owner,
    Admin,
    Developer,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Developer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The scopes a session of this role holds.
    pub fn scopes(self) -> Scopes {
        match self {
            Role::Owner => Scopes::all(),
            Role::Admin => Scope::ALL.into_iter().filter(|s| *s != Scope::MembersWrite).collect(),
            Role::Developer => {
                [Scope::KeysRead, Scope::TokensWrite, Scope::UsageRead, Scope::SettingsRead].into_iter().collect()
            }
            Role::Viewer => {
                [Scope::KeysList, Scope::TokensRead, Scope::UsageRead, Scope::SettingsRead].into_iter().collect()
            }
        }
    }
}

/// The sign-in providers a person can be invited through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    Github,
    Oidc,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Oidc => "oidc",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "github" => Some(Provider::Github),
            "oidc" => Some(Provider::Oidc),
            _ => None,
        }
    }
}

/// Whom an invitation names: a GitHub login or an email at the OpenID
/// provider, as given (shown back) and compared without case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitee {
    pub provider: Provider,
    /// The login (GitHub) or the email (OIDC), as given.
    pub handle: String,
}

impl Invitee {
    /// A GitHub login: 1 to 39 letters, digits or single inner hyphens. An
    /// email: one `@` with text on both sides, at most 254 characters, no
    /// spaces. `None` for anything else.
    pub fn parse(provider: Provider, handle: &str) -> Option<Self> {
        let ok = match provider {
            Provider::Github => {
                (1..=39).contains(&handle.len())
                    && handle.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !handle.starts_with('-')
                    && !handle.ends_with('-')
                    && !handle.contains("--")
            }
            Provider::Oidc => {
                let parts: Vec<&str> = handle.split('@').collect();
                handle.chars().count() <= 254
                    && parts.len() == 2
                    && parts.iter().all(|p| !p.is_empty())
                    && parts[1].contains('.')
                    && !handle.chars().any(|c| c.is_whitespace() || c.is_control())
            }
        };
        ok.then(|| Self { provider, handle: handle.to_owned() })
    }

    /// The key an invitation is found by at sign-in, and unique by within a
    /// tenant: `github:<login>` or `oidc:<email>`, lower case.
    pub fn key(&self) -> String {
        format!("{}:{}", self.provider.as_str(), self.handle.to_lowercase())
    }

    /// `github:LOGIN` or `oidc:EMAIL` (the operator's `--owner`).
    pub fn parse_spec(spec: &str) -> Option<Self> {
        let (provider, handle) = spec.split_once(':')?;
        Self::parse(Provider::parse(provider)?, handle)
    }
}

/// One member of a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub member_id: MemberId,
    pub tenant_id: TenantId,
    pub invitee: Invitee,
    /// The person's stable id at the provider, once they have signed in.
    pub subject: Option<String>,
    /// The person's name (as the inviter gave it, then as the provider
    /// reports it at sign-in).
    pub name: String,
    pub role: Role,
    pub created_at: Timestamp,
    /// The token that invited them (`None`: the operator, at bootstrap).
    pub created_by: Option<TokenId>,
    pub last_sign_in_at: Option<Timestamp>,
    /// The member's *anchor*: a token nobody holds (its secret is dropped
    /// when it is made) under which the member's sessions and everything
    /// they create enter the token tree. Made at their first sign-in;
    /// revoked, with all below it, when they are removed or demoted, and
    /// made afresh at their next sign-in.
    pub anchor: Option<TokenId>,
}

/// How long a session lasts by default, and at most (API.md: 12 hours,
/// configurable up to 24).
pub const DEFAULT_SESSION_SECONDS: i64 = 12 * 3600;
pub const MAX_SESSION_SECONDS: i64 = 24 * 3600;
/// The longest expiry a session hands down to what it creates (a token's
/// longest, a year), not its own.
pub const SESSION_CREATES_FOR_SECONDS: i64 = 31_536_000;
/// What a session token's name adds to its member's name.
pub const SESSION_SUFFIX: &str = " (session)";
/// An anchor's lifetime: longer than anything below it can live.
pub const ANCHOR_SECONDS: i64 = 10 * 31_536_000;

/// A person as a provider vouched for them at sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub provider: Provider,
    /// The stable id: the GitHub user id, the OIDC `sub`.
    pub subject: String,
    /// The GitHub login, or the email the OpenID provider verified (`None`
    /// when it did not verify one: no invitation by email can match).
    pub handle: Option<String>,
    pub name: String,
}

impl Person {
    /// The key a member bound to this person is found by.
    pub fn bound_key(&self) -> String {
        bound_key(self.provider, &self.subject)
    }

    /// The key an invitation of this person waits under, if they have a
    /// handle an invitation can name.
    pub fn invite_key(&self) -> Option<String> {
        let handle = self.handle.as_deref()?;
        Some(format!("invite:{}", Invitee::parse(self.provider, handle)?.key()))
    }
}

fn bound_key(provider: Provider, subject: &str) -> String {
    format!("person:{}:{subject}", provider.as_str())
}

impl MemberRecord {
    /// A new invitation of `invitee` into `tenant` as `role`, named `name`
    /// (else by the login or email), not yet bound to a person; `created_by`
    /// is the inviting token (`None`: the operator).
    pub fn invited(
        tenant: &TenantId,
        invitee: Invitee,
        role: Role,
        name: Option<String>,
        created_by: Option<TokenId>,
        now: Timestamp,
    ) -> Self {
        MemberRecord {
            member_id: MemberId::generate(),
            tenant_id: tenant.clone(),
            name: name.unwrap_or_else(|| invitee.handle.clone()),
            invitee,
            subject: None,
            role,
            created_at: now,
            created_by,
            last_sign_in_at: None,
            anchor: None,
        }
    }

    /// The key a sign-in finds this member by: the person's stable id once
    /// bound, else the invitation's handle ([`Person::bound_key`],
    /// [`Person::invite_key`]). A bound member is never found by its
    /// handle again, so whoever holds that login or email later is not
    /// them.
    pub fn sign_in_key(&self) -> String {
        match &self.subject {
            Some(subject) => bound_key(self.invitee.provider, subject),
            None => format!("invite:{}", self.invitee.key()),
        }
    }

    /// The member with `role`. A role whose scopes do not cover the old
    /// one's is a demotion: the anchor goes (the caller revokes it, and
    /// with it every session and everything the member made with the old
    /// role's rights).
    pub fn with_role(&self, role: Role) -> Self {
        let demoted = !role.scopes().covers(&self.role.scopes());
        MemberRecord { role, anchor: if demoted { None } else { self.anchor.clone() }, ..self.clone() }
    }

    /// The member as `person` signs in at `now`: bound to them, named as
    /// their provider names them, with `anchor`.
    pub fn signed_in(&self, person: &Person, anchor: TokenId, now: Timestamp) -> Self {
        MemberRecord {
            subject: Some(person.subject.clone()),
            name: if person.name.trim().is_empty() { self.name.clone() } else { person.name.clone() },
            last_sign_in_at: Some(now),
            anchor: Some(anchor),
            ..self.clone()
        }
    }

    /// A new anchor for this member ([`MemberRecord::anchor`]): every scope
    /// (what a session may use is its role's, checked when it is made), no
    /// secret anyone holds.
    pub fn new_anchor(&self, now: Timestamp) -> crate::store::TokenRecord {
        let grant = crate::token::Grant {
            scopes: Scopes::all(),
            expires_at: now.plus_seconds(ANCHOR_SECONDS),
            key_ids: None,
            allowed_cidrs: None,
            rate_limit: None,
        };
        let member = Some(self.member_id.clone());
        crate::store::TokenRecord::fresh(&self.tenant_id, self.name.clone(), grant, Vec::new(), member, now).0
    }
}

/// A session of member `member` (named `name`, of `role`) of `tenant`
/// under its `anchor`, for `seconds`, with the role's scopes; the secret is
/// returned beside it, once.
pub fn new_session(
    tenant: &TenantId,
    member: &MemberId,
    name: &str,
    role: Role,
    anchor: &TokenId,
    seconds: i64,
    now: Timestamp,
) -> (crate::store::TokenRecord, crate::token::ParsedToken) {
    let grant = crate::token::Grant {
        scopes: role.scopes(),
        expires_at: now.plus_seconds(seconds),
        key_ids: None,
        allowed_cidrs: None,
        rate_limit: None,
    };
    let name = format!("{name}{SESSION_SUFFIX}");
    crate::store::TokenRecord::fresh(tenant, name, grant, vec![anchor.clone()], Some(member.clone()), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_hold_the_scopes_of_the_contract() {
        let names = |r: Role| r.scopes().iter().map(Scope::as_str).collect::<Vec<_>>();
        assert_eq!(Role::Owner.scopes(), Scopes::all());
        assert!(!Role::Admin.scopes().allows(Scope::MembersWrite));
        assert!(Role::Admin.scopes().allows(Scope::MembersRead));
        assert_eq!(names(Role::Developer), ["keys:read", "tokens:write", "settings:read", "usage:read"]);
        assert_eq!(names(Role::Viewer), ["tokens:read", "settings:read", "usage:read", "keys:list"]);
        assert!(!Role::Viewer.scopes().allows(Scope::KeysRead), "a viewer reads no value");
        // Each role covers the next.
        for w in Role::ALL.windows(2) {
            assert!(w[0].scopes().covers(&w[1].scopes()), "{:?} covers {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn invitees_are_checked_and_keyed_without_case() {
        let g = Invitee::parse(Provider::Github, "Octo-Cat").unwrap();
        assert_eq!(g.key(), "github:octo-cat");
        for bad in ["", "-a", "a-", "a--b", "a b", "a_b", &"a".repeat(40)] {
            assert!(Invitee::parse(Provider::Github, bad).is_none(), "{bad:?}");
        }
        let o = Invitee::parse_spec("oidc:Ana@Acme.example").unwrap();
        assert_eq!((o.provider, o.key().as_str()), (Provider::Oidc, "oidc:ana@acme.example"));
        for bad in ["ana", "@acme.example", "ana@", "ana@b@c.d", "an a@acme.example", "ana@localhost"] {
            assert!(Invitee::parse(Provider::Oidc, bad).is_none(), "{bad:?}");
        }
        assert!(Invitee::parse_spec("gitlab:ana").is_none());
    }
}
