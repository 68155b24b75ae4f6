//! `/members`: a tenant's people and their roles (list, invite, change a
//! role, remove). The rules are [`crate::member`]'s.

use super::body::{fill_page, JsonObject};
use super::{ApiError, ApiResponse, Ctx};
use crate::ids::MemberId;
use crate::member::{Invitee, MemberRecord, Provider, Role};
use crate::store::{AuditAction, AuditStore, Conflict, Fetch, LimitStore, MemberStore, ReadStore, StoreError};
use crate::store::{Revocable, TokenStore};
use crate::token::Scope;
use serde::Serialize;
use std::collections::HashSet;

const NO_SUCH_MEMBER: ApiError = ApiError::NotFound("no such member");
const ROLE_RULE: &str = "must be owner, admin, developer or viewer";

/// A member as the contract shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemberView<'a> {
    member_id: &'a MemberId,
    provider: &'static str,
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    login: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    name: &'a str,
    role: &'static str,
    created_at: crate::clock::Timestamp,
    last_sign_in_at: Option<crate::clock::Timestamp>,
}

impl<'a> From<&'a MemberRecord> for MemberView<'a> {
    fn from(m: &'a MemberRecord) -> Self {
        let handle = Some(m.invitee.handle.as_str());
        let (login, email) = match m.invitee.provider {
            Provider::Github => (handle, None),
            Provider::Oidc => (None, handle),
        };
        Self {
            member_id: &m.member_id,
            provider: m.invitee.provider.as_str(),
            subject: m.subject.as_deref(),
            login,
            email,
            name: &m.name,
            role: m.role.as_str(),
            created_at: m.created_at,
            last_sign_in_at: m.last_sign_in_at,
        }
    }
}

fn parse_role(body: &JsonObject) -> Result<Role, ApiError> {
    Role::parse(body.str("role")?).ok_or_else(|| ApiError::bad("role", ROLE_RULE))
}

/// `POST /members`: the invitation and the role; `name` defaults to the
/// login or email.
fn parse_invitation(body: &JsonObject) -> Result<(Invitee, Role, Option<String>), ApiError> {
    let provider =
        Provider::parse(body.str("provider")?).ok_or_else(|| ApiError::bad("provider", "must be github or oidc"))?;
    let (field, other, rule) = match provider {
        Provider::Github => {
            ("login", "email", "must be a GitHub login (letters, digits and single inner hyphens, up to 39)")
        }
        Provider::Oidc => ("email", "login", "must be an email address (up to 254 characters)"),
    };
    if body.raw(other).is_some() {
        return Err(ApiError::bad(other, &format!("is not taken with provider {}", provider.as_str())));
    }
    let invitee = Invitee::parse(provider, body.str(field)?).ok_or_else(|| ApiError::bad(field, rule))?;
    let name = match body.opt_str("name")? {
        None => None,
        Some(n) if (1..=100).contains(&n.chars().count()) && n.trim() == n => Some(n.to_owned()),
        Some(_) => return Err(ApiError::bad("name", "must be 1 to 100 characters, without surrounding spaces")),
    };
    Ok((invitee, parse_role(body)?, name))
}

// The store: authentication, the members, and their events.
impl<S: ReadStore + LimitStore + AuditStore + MemberStore + TokenStore + ?Sized> Ctx<'_, S> {
    pub(crate) async fn list_members(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::MembersRead).await?;
        let paging = self.req.paging()?;
        let (store, tenant) = (&self.app.store, &caller.token.tenant_id);
        let (found, cursor) = fill_page(
            paging.limit,
            paging.cursor,
            |n, c| async move { store.list_members(tenant, n, c.as_deref()).await },
            |_: &MemberRecord| true,
        )
        .await?;
        let views: Vec<MemberView> = found.iter().map(MemberView::from).collect();
        Ok(ApiResponse::json(200, &serde_json::json!({"members": views, "nextCursor": cursor})))
    }

    /// Invites a person with a role no stronger than the caller's token.
    pub(crate) async fn create_member(&mut self) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::MembersWrite).await?;
        let body = JsonObject::parse(self.req, &["provider", "login", "email", "role", "name"])?;
        let (invitee, role, name) = parse_invitation(&body)?;
        self.require_role(&caller, role).await?;
        let member = MemberRecord::invited(
            &caller.token.tenant_id,
            invitee,
            role,
            name,
            Some(caller.token.acting_as().clone()),
            self.now,
        );
        let mut audit = self.event(&caller, AuditAction::MemberCreate, None);
        audit.detail = Some(format!("{} {} as {}", member.member_id, member.invitee.key(), role.as_str()));
        self.app.store.create_member(&member, &audit).await.map_err(|e| match e {
            StoreError::Conflict(Conflict::AlreadyMember) => {
                ApiError::Conflict(format!("{} is a member already", member.invitee.key()))
            }
            StoreError::Conflict(Conflict::Exists) => ApiError::internal("a fresh member id collided"),
            e => e.into(),
        })?;
        Ok(ApiResponse::json(201, &MemberView::from(&member)))
    }

    /// Changes a member's role (`{"role": …}`); the caller's token must
    /// cover both the role the member has and the one it gets.
    pub(crate) async fn update_member(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::MembersWrite).await?;
        let body = JsonObject::parse(self.req, &["role"])?;
        let role = parse_role(&body)?;
        let member = self.member(&caller, id).await?;
        self.require_role(&caller, member.role).await?;
        self.require_role(&caller, role).await?;
        let mut audit = self.event(&caller, AuditAction::MemberUpdate, None);
        audit.detail = Some(format!("{} {} to {}", member.member_id, member.role.as_str(), role.as_str()));
        let (was, changed) =
            match self.app.store.set_member_role(&member.tenant_id, &member.member_id, role, &audit).await {
                Ok(m) => m,
                Err(e) => return Err(self.member_error(e)),
            };
        if changed.anchor.is_none() {
            self.end_member_tree(&was).await?;
        }
        Ok(ApiResponse::json(200, &MemberView::from(&changed)))
    }

    /// Removes a member whose role the caller's token covers.
    pub(crate) async fn delete_member(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let (caller, _) = self.authenticate(Fetch::default()).await?;
        self.require(&caller, Scope::MembersWrite).await?;
        let member = self.member(&caller, id).await?;
        self.require_role(&caller, member.role).await?;
        let mut audit = self.event(&caller, AuditAction::MemberDelete, None);
        audit.detail = Some(format!("{} {} as {}", member.member_id, member.invitee.key(), member.role.as_str()));
        let was = match self.app.store.delete_member(&member.tenant_id, &member.member_id, &audit).await {
            Ok(was) => was,
            Err(e) => return Err(self.member_error(e)),
        };
        self.end_member_tree(&was).await?;
        Ok(ApiResponse::no_content())
    }

    /// Revokes the anchor `was` had, and with it the member's sessions and
    /// everything they created (tokens, and the exchanges of their
    /// identities): a removal, or a demotion, ends them from the next
    /// request. The member no longer names it, so a sign-in makes a new one.
    async fn end_member_tree(&self, was: &MemberRecord) -> Result<(), ApiError> {
        let Some(anchor) = was.anchor.clone() else { return Ok(()) };
        let root = Revocable { token_id: anchor, expires_at: None };
        self.revoke_all(&was.tenant_id, vec![root], HashSet::new()).await
    }

    async fn member(&self, caller: &super::auth::Caller, id: &str) -> Result<MemberRecord, ApiError> {
        let id = MemberId::parse(id).ok_or(NO_SUCH_MEMBER)?;
        self.app.store.get_member(&caller.token.tenant_id, &id).await?.ok_or(NO_SUCH_MEMBER)
    }

    fn member_error(&self, e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => NO_SUCH_MEMBER,
            StoreError::Conflict(Conflict::LastOwner) => {
                ApiError::Conflict("the tenant's last owner cannot be removed or demoted".into())
            }
            StoreError::Conflict(Conflict::Changed) => {
                ApiError::Conflict("the member changed meanwhile; try again".into())
            }
            e => e.into(),
        }
    }

    /// A 403 unless the caller's token holds every scope of `role` (a token
    /// grants no more than it holds).
    async fn require_role(&self, caller: &super::auth::Caller, role: Role) -> Result<(), ApiError> {
        if caller.token.grant.scopes.covers(&role.scopes()) {
            return Ok(());
        }
        let message =
            format!("role: this token cannot grant or manage the {} role (it lacks some of its scopes)", role.as_str());
        Err(self.forbid(caller, message).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiRequest;

    fn body(json: serde_json::Value) -> JsonObject {
        let req = ApiRequest {
            method: "POST".into(),
            content_type: Some("application/json".into()),
            body: json.to_string().into_bytes().into(),
            ..ApiRequest::default()
        };
        JsonObject::parse(&req, &["provider", "login", "email", "role", "name"]).unwrap()
    }

    #[test]
    fn invitations_parse_and_bad_ones_name_their_field() {
        let (i, role, name) =
            parse_invitation(&body(serde_json::json!({"provider": "github", "login": "octocat", "role": "viewer"})))
                .unwrap();
        assert_eq!((i.key().as_str(), role, name), ("github:octocat", Role::Viewer, None));
        let cases = [
            (serde_json::json!({"provider": "gitlab", "login": "a", "role": "viewer"}), "provider"),
            (serde_json::json!({"provider": "github", "login": "a b", "role": "viewer"}), "login"),
            (serde_json::json!({"provider": "github", "email": "a@b.c", "role": "viewer"}), "email"),
            (serde_json::json!({"provider": "oidc", "email": "nobody", "role": "viewer"}), "email"),
            (serde_json::json!({"provider": "oidc", "email": "a@b.c", "role": "root"}), "role"),
            (serde_json::json!({"provider": "oidc", "email": "a@b.c", "role": "viewer", "name": " x"}), "name"),
            (serde_json::json!({"provider": "github", "role": "viewer"}), "login"),
        ];
        for (v, field) in cases {
            let err = match parse_invitation(&body(v.clone())) {
                Err(e) => e,
                Ok(_) => panic!("{v} parsed"),
            };
            assert!(err.to_string().starts_with(field), "{v}: {err}");
        }
    }
}
