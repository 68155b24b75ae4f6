//! People's sign-in (API.md, *Sign-in*): `GET /auth/providers`, `GET
//! /auth/{provider}/start`, `GET /auth/{provider}/callback` and `POST
//! /auth/session`. The flow's rules are [`crate::signin`]'s; who a person
//! is in a tenant is [`crate::member`]'s.
//!
//! Round trips on our side once the provider has answered: the member
//! found (one query), then the code kept beside the member's sign-in time
//! (one, in parallel); `POST /auth/session`: the code taken, then the
//! session made with its `auth.signin` event (one transaction). A first
//! sign-in adds the member's anchor (one) before.

use super::body::JsonObject;
use super::{ApiError, ApiResponse, Ctx};
use crate::ids::TenantId;
use crate::member::{MemberRecord, Person, Provider, Role};
use crate::signin::{self, github, oidc, Attempt, Binding, Handoff, Refusal};
use crate::store::{Actor, AuditAction, AuditStore, Conflict, MemberStore, SignInStore, StoreError, TenantStore};
use crate::store::{TenantRecord, TokenStore};
use serde_json::json;

/// A page the browser lands on when a sign-in cannot finish: what happened
/// and the way back, nothing else (no script, no secret).
fn page(status: u16, title: &str, message: &str) -> ApiResponse {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · IBYOK</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"stylesheet\" href=\"/console/console.css\"></head>\
         <body><main class=\"signin-result\"><h1>{t}</h1><p>{m}</p>\
         <p><a href=\"/console/\">Back to sign-in</a></p></main></body></html>",
        t = escape(title),
        m = escape(message)
    );
    let mut resp = ApiResponse { status, headers: Vec::new(), body: html.into_bytes().into() };
    resp.headers.push(("content-type", "text/html; charset=utf-8".to_owned()));
    resp.headers.push(("content-security-policy", super::CONSOLE_CSP.to_owned()));
    no_store(&mut resp);
    resp
}

fn no_store(resp: &mut ApiResponse) {
    resp.headers.push(("cache-control", "no-store".to_owned()));
    resp.headers.push(("referrer-policy", "no-referrer".to_owned()));
}

fn redirect(location: &str) -> ApiResponse {
    let mut resp =
        ApiResponse { status: 302, headers: vec![("location", location.to_owned())], body: Vec::new().into() };
    no_store(&mut resp);
    resp
}

/// The provider a path names, if it is enabled.
fn provider_of(ctx_config: &signin::SignInConfig, id: &str) -> Result<Provider, ApiError> {
    Provider::parse(id).filter(|p| ctx_config.enabled(*p)).ok_or(ApiError::NotFound("no such sign-in provider"))
}

impl<S: SignInStore + MemberStore + TokenStore + TenantStore + AuditStore + ?Sized> Ctx<'_, S> {
    pub(crate) async fn list_providers(&mut self) -> Result<ApiResponse, ApiError> {
        let providers: Vec<_> = self
            .app
            .config
            .sign_in
            .providers()
            .into_iter()
            .map(|(p, name)| json!({"id": p.as_str(), "name": name}))
            .collect();
        Ok(ApiResponse::json(200, &json!({"providers": providers})))
    }

    /// `GET /auth/{provider}/start[?returnTo=/console/…][&cli=…&codeChallenge=…]`.
    pub(crate) async fn start_sign_in(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let config = &self.app.config.sign_in;
        let provider = provider_of(config, id)?;
        let return_to = self.req.query_param("returnTo").unwrap_or("/console/");
        if !signin::valid_return_to(return_to) {
            return Err(ApiError::bad("returnTo", "must be a path of the console (/console/…)"));
        }
        let cli = match (self.req.query_param("cli"), self.req.query_param("codeChallenge")) {
            (None, None) => None,
            (Some(url), Some(challenge)) => {
                if !signin::valid_cli_redirect(url) {
                    return Err(ApiError::bad("cli", "must be a loopback address, http://127.0.0.1:PORT/…"));
                }
                let b64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
                if challenge.len() != 43 || !challenge.chars().all(b64url) {
                    return Err(ApiError::bad(
                        "codeChallenge",
                        "must be a PKCE S256 challenge (43 base64url characters)",
                    ));
                }
                Some((url.to_owned(), challenge.to_owned()))
            }
            _ => return Err(ApiError::bad("cli", "cli and codeChallenge go together")),
        };
        let redirect_uri = config.redirect_uri(provider).ok_or(ApiError::NotFound("no such sign-in provider"))?;
        let (state, cookie, verifier, nonce) =
            (signin::random_secret(), signin::random_secret(), signin::random_secret(), signin::random_secret());
        let challenge = signin::pkce_challenge(verifier.expose());
        let location = match provider {
            Provider::Oidc => {
                let p = config.oidc.as_ref().ok_or(ApiError::NotFound("no such sign-in provider"))?;
                let endpoints = oidc::discover(&p.issuer, &self.app.config.outbound())
                    .await
                    .map_err(|e| ApiError::Unavailable(format!("the OpenID provider: {e}").into()))?;
                oidc::authorize_url(
                    &endpoints.authorization,
                    p,
                    &redirect_uri,
                    state.expose(),
                    &challenge,
                    nonce.expose(),
                )
            }
            Provider::Github => {
                let app = config.github.as_ref().ok_or(ApiError::NotFound("no such sign-in provider"))?;
                github::authorize_url(app, &redirect_uri, state.expose(), &challenge)
            }
        };
        let attempt = Attempt {
            provider: provider.as_str().to_owned(),
            browser: signin::browser_mark(cookie.expose()),
            verifier: verifier.expose().clone(),
            nonce: nonce.expose().clone(),
            return_to: return_to.to_owned(),
            cli,
        };
        let expires = self.now.plus_seconds(signin::ATTEMPT_SECONDS);
        let key = signin::stored_key("signin", state.expose());
        self.app.store.put_pending(&key, &signin::seal(&attempt), expires).await?;
        let mut resp = redirect(&location);
        resp.headers.push(("set-cookie", signin::set_cookie(Some(cookie.expose()), !config.loopback())));
        Ok(resp)
    }

    /// `GET /auth/{provider}/callback?code=…&state=…`.
    pub(crate) async fn finish_sign_in(&mut self, id: &str) -> Result<ApiResponse, ApiError> {
        let config = &self.app.config.sign_in;
        let provider = provider_of(config, id)?;
        let cookie = self.req.cookie.as_ref().and_then(|c| signin::cookie(Some(c.expose()), signin::COOKIE));
        let attempt = match (self.req.query_param("state"), cookie) {
            (Some(state), Some(cookie)) => {
                let key = signin::stored_key("signin", state);
                let taken = self.app.store.take_pending(&key, self.now).await?;
                taken.and_then(|data| signin::open::<Attempt>(&data)).filter(|a| {
                    a.provider == provider.as_str() && signin::same(&a.browser, &signin::browser_mark(cookie))
                })
            }
            _ => None,
        };
        let Some(attempt) = attempt else {
            self.log_refusal(provider, Refusal::State, None);
            return Ok(page(
                400,
                "Sign-in expired",
                "This sign-in was not started here, was used already, or took too long. Please sign in again.",
            ));
        };
        let Some(code) = self.req.query_param("code") else {
            self.log_refusal(provider, Refusal::Provider, self.req.query_param("error"));
            return Ok(page(400, "Sign-in cancelled", "The provider did not complete the sign-in. Please try again."));
        };
        let redirect_uri = config.redirect_uri(provider).ok_or(ApiError::NotFound("no such sign-in provider"))?;
        let outbound = self.app.config.outbound();
        let person = match provider {
            Provider::Oidc => {
                let p = config.oidc.as_ref().ok_or(ApiError::NotFound("no such sign-in provider"))?;
                match oidc::discover(&p.issuer, &outbound).await {
                    Ok(endpoints) => {
                        oidc::person(
                            p,
                            &endpoints.token,
                            &redirect_uri,
                            code,
                            &attempt.verifier,
                            &attempt.nonce,
                            &self.app.jwks,
                            &outbound,
                            self.now,
                        )
                        .await
                    }
                    Err(e) => Err(oidc::Failed::Unavailable(e)),
                }
            }
            Provider::Github => {
                let app = config.github.as_ref().ok_or(ApiError::NotFound("no such sign-in provider"))?;
                github::person(app, &redirect_uri, code, &attempt.verifier, &outbound).await
            }
        };
        let person = match person {
            Ok(p) => p,
            Err(oidc::Failed::Unavailable(why)) => {
                return Err(ApiError::Unavailable(format!("the sign-in provider: {why}").into()))
            }
            Err(oidc::Failed::Refused(why)) => {
                self.log_refusal(provider, Refusal::Provider, Some(&why));
                return Ok(page(
                    400,
                    "Sign-in failed",
                    "The provider did not confirm who you are. Please sign in again.",
                ));
            }
            Err(oidc::Failed::IdToken(cause)) => {
                self.log_refusal(provider, Refusal::IdToken, Some(cause.as_str()));
                return Ok(page(
                    400,
                    "Sign-in failed",
                    "The provider's answer did not pass our checks. Please sign in again.",
                ));
            }
        };
        let (stamp, member) = match self.member_signing_in(&person).await? {
            Some(m) => m,
            // Sign-up invites the person by their handle: an OpenID person
            // needs an email the provider verified.
            None if config.signup_open && person.invite_key().is_none() => {
                self.log_refusal(provider, Refusal::NotMember, Some("sign-up without a verified email"));
                return Ok(page(
                    403,
                    "Email not verified",
                    "To make a team here, your provider must confirm your email address. Verify it there, then sign in again.",
                ));
            }
            None if config.signup_open => (None, self.sign_up(&person).await?),
            None => {
                self.log_refusal(provider, Refusal::NotMember, Some(&person.subject));
                return Ok(page(
                    403,
                    "Not a member",
                    "You signed in, but no team on this vault has invited you. Ask an owner of your team to invite you, then sign in again.",
                ));
            }
        };
        let anchor = member.anchor.clone().ok_or_else(|| ApiError::internal("a signed-in member without an anchor"))?;
        let code = signin::random_secret();
        let binding = match &attempt.cli {
            Some((_, challenge)) => Binding::Cli(challenge.clone()),
            None => Binding::Browser(attempt.browser.clone()),
        };
        let handoff = Handoff {
            provider: provider.as_str().to_owned(),
            tenant_id: member.tenant_id.to_string(),
            member_id: member.member_id.to_string(),
            anchor: anchor.to_string(),
            name: member.name.clone(),
            role: member.role.as_str().to_owned(),
            binding,
        };
        let key = signin::stored_key("code", code.expose());
        let expires = self.now.plus_seconds(signin::CODE_SECONDS);
        let sealed = signin::seal(&handoff);
        let put = self.app.store.put_pending(&key, &sealed, expires);
        match stamp {
            None => put.await?,
            Some(was) => {
                let (stamped, put) = tokio::join!(self.app.store.update_sign_in(&was, &member), put);
                put?;
                if let Err(e) = stamped {
                    // The member changed meanwhile (removed, a new role):
                    // the code is taken back, unused.
                    self.app.store.take_pending(&key, self.now).await?;
                    return match e {
                        StoreError::Conflict(Conflict::Changed) | StoreError::NotFound => Ok(page(
                            400,
                            "Sign-in interrupted",
                            "Your membership changed while you signed in. Please sign in again.",
                        )),
                        e => Err(e.into()),
                    };
                }
            }
        }
        let location = match &attempt.cli {
            Some((url, _)) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}code={}", code.expose())
            }
            None => format!("{}#signin={}", attempt.return_to, code.expose()),
        };
        Ok(redirect(&location))
    }

    /// The member `person` signs in as, bound and with an anchor: the
    /// oldest membership bound to them, else the oldest invitation of
    /// their handle (bound now). `None`: they are no member. With the
    /// member as it was read when its sign-in stamp is still to be written
    /// (a member who has an anchor already: the stamp goes beside the
    /// one-time code, not before it).
    async fn member_signing_in(
        &self,
        person: &Person,
    ) -> Result<Option<(Option<MemberRecord>, MemberRecord)>, ApiError> {
        let mut keys = vec![person.bound_key()];
        keys.extend(person.invite_key());
        for _ in 0..4 {
            let found = self.app.store.find_sign_in(&keys).await?;
            let bound = found.iter().find(|m| m.subject.as_deref() == Some(person.subject.as_str()));
            let Some(was) = bound.or_else(|| found.iter().find(|m| m.subject.is_none())).cloned() else {
                return Ok(None);
            };
            let anchor = match &was.anchor {
                Some(a) => {
                    let now = was.signed_in(person, a.clone(), self.now);
                    return Ok(Some((Some(was), now)));
                }
                None => {
                    let anchor = was.new_anchor(self.now);
                    let mut event = self.event_as(&was.tenant_id, &anchor.token_id, AuditAction::TokenCreate, None);
                    event.detail = Some(format!("the anchor of {}", was.member_id));
                    self.app.store.create_token(&anchor, &event).await?;
                    anchor.token_id
                }
            };
            let now = was.signed_in(person, anchor, self.now);
            match self.app.store.update_sign_in(&was, &now).await {
                Ok(()) => return Ok(Some((None, now))),
                // Changed meanwhile (a concurrent sign-in, a role change):
                // read again. An anchor made for nothing stays behind, inert:
                // nobody holds it, no member names it, nothing is below it.
                Err(StoreError::Conflict(Conflict::Changed) | StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Conflict("the membership changed during sign-in; please sign in again".into()))
    }

    /// Sign-up: a tenant of the person's own, them its owner.
    async fn sign_up(&self, person: &Person) -> Result<MemberRecord, ApiError> {
        let tenant = TenantRecord {
            tenant_id: TenantId::generate(),
            name: person.name.clone(),
            modes: Default::default(),
            created_at: self.now,
            reads_per_month: None,
        };
        // The tenant's root: the break-glass credential nobody holds until
        // the operator makes a new one.
        let (root, _) = crate::bootstrap::root_token(&tenant.tenant_id, &tenant.name, self.now);
        self.app.store.create_tenant(&tenant, &root).await?;
        let handle = person.handle.as_deref().unwrap_or_default();
        let invitee = crate::member::Invitee::parse(person.provider, handle)
            .ok_or_else(|| ApiError::internal("sign-up of a person with no handle to invite"))?;
        let invited =
            MemberRecord::invited(&tenant.tenant_id, invitee, Role::Owner, Some(person.name.clone()), None, self.now);
        let mut event = self.event_as(&tenant.tenant_id, &root.token_id, AuditAction::MemberCreate, None);
        event.token_id = None;
        event.detail = Some(format!("{} {} as owner (sign-up)", invited.member_id, invited.invitee.key()));
        self.app.store.create_member(&invited, &event).await?;
        let anchor = invited.new_anchor(self.now);
        let mut event = self.event_as(&tenant.tenant_id, &anchor.token_id, AuditAction::TokenCreate, None);
        event.detail = Some(format!("the anchor of {}", invited.member_id));
        self.app.store.create_token(&anchor, &event).await?;
        let now = invited.signed_in(person, anchor.token_id.clone(), self.now);
        self.app.store.update_sign_in(&invited, &now).await?;
        Ok(now)
    }

    /// `POST /auth/session` `{"code": …[, "codeVerifier": …]}`.
    pub(crate) async fn create_session(&mut self) -> Result<ApiResponse, ApiError> {
        let body = JsonObject::parse(self.req, &["code", "codeVerifier"])?;
        let code = body.str("code")?;
        if code.len() > 64 {
            return Err(ApiError::Unauthorized);
        }
        let verifier = body.opt_str("codeVerifier")?;
        let cookie = self.req.cookie.as_ref().and_then(|c| signin::cookie(Some(c.expose()), signin::COOKIE));
        let taken = self.app.store.take_pending(&signin::stored_key("code", code), self.now).await?;
        let handoff = taken.and_then(|d| signin::open::<Handoff>(&d)).ok_or(ApiError::Unauthorized)?;
        let bound = match (&handoff.binding, cookie, verifier) {
            (Binding::Browser(mark), Some(cookie), _) => signin::same(mark, &signin::browser_mark(cookie)),
            (Binding::Cli(challenge), _, Some(v)) => signin::same(challenge, &signin::pkce_challenge(v)),
            _ => false,
        };
        let (Some(tenant), Some(member_id), Some(role)) = (handoff.tenant(), handoff.member(), handoff.role()) else {
            return Err(ApiError::Unauthorized);
        };
        if !bound {
            return Err(ApiError::Unauthorized);
        }
        let seconds = self.app.config.sign_in.session_seconds;
        let anchor = handoff.anchor();
        let (record, token) =
            crate::member::new_session(&tenant, &member_id, &handoff.name, role, &anchor, seconds, self.now);
        let mut event = self.event_as(&tenant, &record.token_id, AuditAction::AuthSignin, None);
        event.actor = Some(Actor::of(&record));
        event.detail = Some(format!("{} as {}", handoff.provider, role.as_str()));
        match self.app.store.create_token(&record, &event).await {
            Ok(()) => {}
            // The member's anchor is no longer live: they were removed or
            // demoted since the callback (the member no longer names it), or
            // someone revoked the anchor itself. The member forgets it, so
            // that their next sign-in makes a new one.
            Err(StoreError::Conflict(Conflict::IssuerNotLive)) => {
                if let Some(was) = self.app.store.get_member(&tenant, &member_id).await? {
                    if was.anchor.as_ref() == Some(&anchor) {
                        let now = MemberRecord { anchor: None, ..was.clone() };
                        match self.app.store.update_sign_in(&was, &now).await {
                            Ok(()) | Err(StoreError::Conflict(Conflict::Changed) | StoreError::NotFound) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                return Err(ApiError::Unauthorized);
            }
            Err(StoreError::Conflict(Conflict::Exists)) => return Err(ApiError::internal("a fresh token id collided")),
            Err(e) => return Err(e.into()),
        }
        let view = json!({
            "token": token.secret().expose_token(),
            "tokenId": record.token_id,
            "expiresAt": record.grant.expires_at.rfc3339(),
            "member": {"memberId": member_id, "name": handoff.name, "role": role.as_str()},
        });
        let mut resp = ApiResponse::json(201, &view);
        resp.headers.push(("set-cookie", signin::set_cookie(None, !self.app.config.sign_in.loopback())));
        no_store(&mut resp);
        Ok(resp)
    }

    /// A refused sign-in, in the log (no tenant to write an event to; never
    /// a code, state or token).
    fn log_refusal(&self, provider: Provider, why: Refusal, detail: Option<&str>) {
        tracing::warn!(
            request_id = %self.req.request_id,
            provider = provider.as_str(),
            refusal = why.as_str(),
            detail = detail.unwrap_or("-"),
            "sign-in refused"
        );
    }
}
