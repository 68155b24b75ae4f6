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
        }
    }
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
