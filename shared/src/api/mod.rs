//! The HTTP contract (`API.md`), independent of how requests arrive: the
//! Lambda functions, the development server and the tests all call
//! [`App::handle`] with an [`ApiRequest`].

mod account;
mod auth;
pub mod body;
pub mod error;
mod exchange;
mod external;
mod identities;
mod keys;
pub mod limits;
mod members;
mod scanning;
mod signin;
mod tokens;
mod views;

pub use error::ApiError;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::config::Config;
use crate::kms::Kms;
use crate::store::Store;

pub use crate::secret::Redacted;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// A request as the contract sees it.
#[derive(Clone, Debug, Default)]
pub struct ApiRequest {
    /// Upper case.
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The raw `Authorization` header. `Debug` of the request never shows it.
    pub authorization: Option<Redacted>,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub request_id: String,
    pub body: Redacted<Vec<u8>>,
    /// The raw `Cookie` header (sign-in's routes read it; `Debug` never
    /// shows it).
    pub cookie: Option<Redacted>,
    /// `Github-Public-Key-Identifier` and `Github-Public-Key-Signature`
    /// (`POST /github/secret-scanning`; ignored elsewhere).
    pub github_key_id: Option<String>,
    pub github_signature: Option<String>,
}

#[derive(Debug)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// May carry a key value or a new token (the two fields the contract
    /// allows): zeroized when dropped.
    pub body: Redacted<Vec<u8>>,
}

impl ApiResponse {
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        // Into a buffer that wipes what it outgrows: the body may carry a
        // value or a new token.
        let mut body = Redacted::with_capacity(256);
        // Serialising our own view types cannot fail.
        let _ = serde_json::to_writer(&mut body, value);
        Self { status, headers: vec![("content-type", "application/json".to_owned())], body }
    }

    pub fn no_content() -> Self {
        Self { status: 204, headers: Vec::new(), body: Vec::new().into() }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// On every response to a request that a token authenticated: its expiry.
pub const TOKEN_EXPIRES_HEADER: &str = "ibyok-token-expires-at";

/// The Content-Security-Policy of the web console's files (`ibyok dev` and
/// the deployment's CloudFront headers policy, which tests keep equal):
/// scripts and styles from its own origin only, no inline script or style,
/// requests to its own origin only (the API is served beside it), never
/// framed.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                               connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Every route of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    CreateKey,
    ListKeys,
    GetKey,
    UpdateKey,
    RotateKey,
    DeleteKey,
    ReadValue,
    CreateToken,
    ListTokens,
    RevokeToken,
    RevokeSelf,
    GetModes,
    PutModes,
    Usage,
    Audit,
    GetGuardrails,
    DailyUsage,
    PromoteKey,
    ListVersions,
    CreateIdentity,
    ListIdentities,
    GetIdentity,
    DeleteIdentity,
    ExchangeOidc,
    ExchangeAws,
    GithubSecretScanning,
    AuditDigests,
    ListMembers,
    CreateMember,
    UpdateMember,
    DeleteMember,
    ListProviders,
    StartSignIn,
    FinishSignIn,
    CreateSession,
}

impl Route {
    pub const ALL: [Route; 35] = [
        Route::CreateKey,
        Route::ListKeys,
        Route::GetKey,
        Route::UpdateKey,
        Route::RotateKey,
        Route::DeleteKey,
        Route::ReadValue,
        Route::CreateToken,
        Route::ListTokens,
        Route::RevokeToken,
        Route::RevokeSelf,
        Route::GetModes,
        Route::PutModes,
        Route::Usage,
        Route::Audit,
        Route::GetGuardrails,
        Route::DailyUsage,
        Route::PromoteKey,
        Route::ListVersions,
        Route::CreateIdentity,
        Route::ListIdentities,
        Route::GetIdentity,
        Route::DeleteIdentity,
        Route::ExchangeOidc,
        Route::ExchangeAws,
        Route::GithubSecretScanning,
        Route::AuditDigests,
        Route::ListMembers,
        Route::CreateMember,
        Route::UpdateMember,
        Route::DeleteMember,
        Route::ListProviders,
        Route::StartSignIn,
        Route::FinishSignIn,
        Route::CreateSession,
    ];

    /// The route's bit in a route set (`u64`: one bit per route).
    pub const fn bit(self) -> u64 {
        1 << self as u64
    }

    /// The set of `routes`, for [`App::handle_set`] (a const generic).
    pub const fn set(routes: &[Route]) -> u64 {
        let (mut set, mut i) = (0, 0);
        while i < routes.len() {
            set |= routes[i].bit();
            i += 1;
        }
        set
    }

    /// Every route.
    pub const ALL_SET: u64 = Route::set(&Route::ALL);

    pub const fn in_set(self, set: u64) -> bool {
        set & self.bit() != 0
    }

    /// Whether any route of `set` calls KMS (sealing or opening a value).
    pub const fn set_calls_kms(set: u64) -> bool {
        set & (Route::CreateKey.bit() | Route::RotateKey.bit() | Route::ReadValue.bit()) != 0
    }

    /// The route as API Gateway names it.
    pub fn key(self) -> &'static str {
        match self {
            Route::CreateKey => "POST /keys",
            Route::ListKeys => "GET /keys",
            Route::GetKey => "GET /keys/{keyId}",
            Route::UpdateKey => "PATCH /keys/{keyId}",
            Route::RotateKey => "PUT /keys/{keyId}/value",
            Route::DeleteKey => "DELETE /keys/{keyId}",
            Route::ReadValue => "GET /external/keys/{keyId}/value",
            Route::CreateToken => "POST /tokens",
            Route::ListTokens => "GET /tokens",
            Route::RevokeToken => "DELETE /tokens/{tokenId}",
            Route::RevokeSelf => "DELETE /tokens/self",
            Route::GetModes => "GET /settings/modes",
            Route::PutModes => "PUT /settings/modes",
            Route::Usage => "GET /usage",
            Route::Audit => "GET /audit",
            Route::GetGuardrails => "GET /settings/guardrails",
            Route::DailyUsage => "GET /usage/daily",
            Route::PromoteKey => "POST /keys/{keyId}/promote",
            Route::ListVersions => "GET /keys/{keyId}/versions",
            Route::CreateIdentity => "POST /identities",
            Route::ListIdentities => "GET /identities",
            Route::GetIdentity => "GET /identities/{identityId}",
            Route::DeleteIdentity => "DELETE /identities/{identityId}",
            Route::ExchangeOidc => "POST /auth/oidc",
            Route::ExchangeAws => "POST /auth/aws",
            Route::GithubSecretScanning => "POST /github/secret-scanning",
            Route::AuditDigests => "GET /audit/digests",
            Route::ListMembers => "GET /members",
            Route::CreateMember => "POST /members",
            Route::UpdateMember => "PATCH /members/{memberId}",
            Route::DeleteMember => "DELETE /members/{memberId}",
            Route::ListProviders => "GET /auth/providers",
            Route::StartSignIn => "GET /auth/{provider}/start",
            Route::FinishSignIn => "GET /auth/{provider}/callback",
            Route::CreateSession => "POST /auth/session",
        }
    }
}

/// Which route a method and path name, with the path's id if it has one.
#[derive(Debug, PartialEq, Eq)]
pub enum Matched<'a> {
    Route(Route, Option<&'a str>),
    /// A known path; the methods it takes (for the `Allow` header).
    MethodNotAllowed(String),
    NotFound,
}

pub fn route<'a>(method: &str, path: &'a str) -> Matched<'a> {
    let segments: Vec<&str> = match path.strip_prefix('/') {
        Some(rest) => rest.split('/').collect(),
        None => return Matched::NotFound,
    };
    if segments.iter().any(|s| s.is_empty()) {
        return Matched::NotFound;
    }
    let pick = |options: &[(&str, Route)], id: Option<&'a str>| match options.iter().find(|(m, _)| *m == method) {
        Some((_, r)) => Matched::Route(*r, id),
        None => Matched::MethodNotAllowed(options.iter().map(|(m, _)| *m).collect::<Vec<_>>().join(", ")),
    };
    match segments.as_slice() {
        ["keys"] => pick(&[("GET", Route::ListKeys), ("POST", Route::CreateKey)], None),
        ["keys", id] => {
            pick(&[("GET", Route::GetKey), ("PATCH", Route::UpdateKey), ("DELETE", Route::DeleteKey)], Some(id))
        }
        ["keys", id, "value"] => pick(&[("PUT", Route::RotateKey)], Some(id)),
        ["keys", id, "promote"] => pick(&[("POST", Route::PromoteKey)], Some(id)),
        ["keys", id, "versions"] => pick(&[("GET", Route::ListVersions)], Some(id)),
        ["external", "keys", id, "value"] => pick(&[("GET", Route::ReadValue)], Some(id)),
        ["tokens"] => pick(&[("GET", Route::ListTokens), ("POST", Route::CreateToken)], None),
        ["tokens", "self"] => pick(&[("DELETE", Route::RevokeSelf)], None),
        ["tokens", id] => pick(&[("DELETE", Route::RevokeToken)], Some(id)),
        ["settings", "modes"] => pick(&[("GET", Route::GetModes), ("PUT", Route::PutModes)], None),
        ["settings", "guardrails"] => pick(&[("GET", Route::GetGuardrails)], None),
        ["usage"] => pick(&[("GET", Route::Usage)], None),
        ["usage", "daily"] => pick(&[("GET", Route::DailyUsage)], None),
        ["audit"] => pick(&[("GET", Route::Audit)], None),
        ["audit", "digests"] => pick(&[("GET", Route::AuditDigests)], None),
        ["identities"] => pick(&[("GET", Route::ListIdentities), ("POST", Route::CreateIdentity)], None),
        ["identities", id] => pick(&[("GET", Route::GetIdentity), ("DELETE", Route::DeleteIdentity)], Some(id)),
        ["auth", "oidc"] => pick(&[("POST", Route::ExchangeOidc)], None),
        ["auth", "aws"] => pick(&[("POST", Route::ExchangeAws)], None),
        ["auth", "providers"] => pick(&[("GET", Route::ListProviders)], None),
        ["auth", "session"] => pick(&[("POST", Route::CreateSession)], None),
        ["auth", id, "start"] => pick(&[("GET", Route::StartSignIn)], Some(id)),
        ["auth", id, "callback"] => pick(&[("GET", Route::FinishSignIn)], Some(id)),
        ["members"] => pick(&[("GET", Route::ListMembers), ("POST", Route::CreateMember)], None),
        ["members", id] => pick(&[("PATCH", Route::UpdateMember), ("DELETE", Route::DeleteMember)], Some(id)),
        ["github", "secret-scanning"] => pick(&[("POST", Route::GithubSecretScanning)], None),
        _ => Matched::NotFound,
    }
}

/// The service: the ports, the configuration and the clock. Generic over
/// the store so that a Lambda function, on the DynamoDB store itself (not
/// `dyn Store`), links only the store methods its routes call; everything
/// else (the development server, the tests) uses the default, `dyn Store`.
pub struct App<S: ?Sized = dyn Store> {
    pub store: Arc<S>,
    pub kms: Arc<dyn Kms>,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    /// The read path's plans (see `external`).
    read_plans: external::ReadPlans,
    /// The tokens' rate limits this instance has seen (see `limits`).
    limit_memo: limits::LimitMemo,
    /// The OpenID issuers' keys this instance has fetched.
    jwks: crate::identity::jwks::Jwks,
    /// GitHub's secret scanning keys this instance has fetched.
    reporter_keys: crate::scanning::ReporterKeys,
    /// Where leak notices go (`None`: nowhere but the audit log).
    pub notifier: Option<Arc<dyn crate::notify::Notifier>>,
    /// The audit digests' signing key, whose public key `GET /audit/digests`
    /// publishes (`None`: that route answers 503).
    pub audit_signer: Option<Arc<dyn crate::kms::Signer>>,
}

impl<S: Store + ?Sized> App<S> {
    pub fn new(store: Arc<S>, kms: Arc<dyn Kms>, config: Config) -> Self {
        let outbound = config.outbound();
        Self {
            jwks: crate::identity::jwks::Jwks::new(outbound),
            reporter_keys: crate::scanning::ReporterKeys::new(outbound),
            notifier: None,
            audit_signer: None,
            store,
            kms,
            config,
            clock: Arc::new(SystemClock),
            read_plans: external::ReadPlans::default(),
            limit_memo: limits::LimitMemo::default(),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends leak notices through `notifier`.
    pub fn with_notifier(mut self, notifier: Option<Arc<dyn crate::notify::Notifier>>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Publishes the public key of `signer` on `GET /audit/digests`.
    pub fn with_audit_signer(mut self, signer: Option<Arc<dyn crate::kms::Signer>>) -> Self {
        self.audit_signer = signer;
        self
    }

    /// Serves every route.
    pub async fn handle(&self, req: ApiRequest) -> ApiResponse {
        self.handle_set::<{ Route::ALL_SET }>(req).await
    }

    /// Serves the routes in the set `SERVED` ([`Route::set`]); any other
    /// known route is answered as an unknown path (a function only ever
    /// receives its own routes from API Gateway, so this only guards
    /// against a wiring mistake). The set is a constant so that a function
    /// compiles, and links, only its own routes' handlers.
    pub async fn handle_set<const SERVED: u64>(&self, mut req: ApiRequest) -> ApiResponse {
        let started = Instant::now();
        if req.request_id.is_empty() {
            req.request_id = crate::ids::new_request_id();
        }
        let mut token_id = None;
        let mut token_expires_at = None;
        let mut rate = None;
        let (route_name, result) = if req.body.expose().len() > body::max_body_bytes(&req.path) {
            ("-", Err(ApiError::PayloadTooLarge))
        } else {
            match route(&req.method, &req.path) {
                Matched::Route(r, id) if r.in_set(SERVED) => {
                    let ctx = Ctx {
                        app: self,
                        req: &req,
                        now: self.clock.now(),
                        token_id: &mut token_id,
                        token_expires_at: &mut token_expires_at,
                        rate: &mut rate,
                        pre_counted: None,
                    };
                    (r.key(), ctx.dispatch::<SERVED>(r, id.map(str::to_owned)).await)
                }
                Matched::Route(..) | Matched::NotFound => ("-", Err(ApiError::NotFound("no such route"))),
                Matched::MethodNotAllowed(allow) => ("-", Err(ApiError::MethodNotAllowed(allow))),
            }
        };
        let mut resp = match result {
            Ok(resp) => resp,
            Err(err) => {
                match &err {
                    ApiError::Internal(cause) => {
                        let cause = crate::fault::chain(cause.as_ref());
                        tracing::error!(request_id = %req.request_id, route = route_name, cause = %cause, "internal error")
                    }
                    ApiError::Unavailable(cause) => {
                        let cause = crate::fault::chain(cause.as_ref());
                        tracing::warn!(request_id = %req.request_id, route = route_name, cause = %cause, "backend unavailable")
                    }
                    _ => {}
                }
                err.into_response()
            }
        };
        resp.headers.push(("x-request-id", req.request_id.clone()));
        if let Some(expires_at) = token_expires_at {
            resp.headers.push((TOKEN_EXPIRES_HEADER, expires_at.rfc3339()));
        }
        if let Some(rate) = rate {
            rate.apply(&mut resp);
        }
        tracing::info!(
            request_id = %req.request_id,
            route = route_name,
            method = %req.method,
            status = resp.status,
            latency_us = started.elapsed().as_micros() as u64,
            token_id = token_id.as_ref().map(|t: &crate::ids::TokenId| t.as_str()).unwrap_or("-"),
            "request"
        );
        resp
    }
}

/// One request in flight.
pub(crate) struct Ctx<'a, S: ?Sized = dyn Store> {
    pub app: &'a App<S>,
    pub req: &'a ApiRequest,
    pub now: Timestamp,
    /// The caller's token id, once known, for the request's log line.
    pub token_id: &'a mut Option<crate::ids::TokenId>,
    /// The caller's token's expiry, once the token is authenticated: sent
    /// back as [`TOKEN_EXPIRES_HEADER`].
    pub token_expires_at: &'a mut Option<Timestamp>,
    /// A limited token's `RateLimit-*` headers, once it was counted.
    pub rate: &'a mut Option<limits::RateHeaders>,
    /// A count the planned read took before the full path authenticates.
    pub pre_counted: Option<limits::PreCounted>,
}

type Handled<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<ApiResponse, ApiError>> + Send + 'a>>;

impl<'a, S: Store + ?Sized> Ctx<'a, S> {
    /// The handler of `route`, if it is in `SERVED`. Not an `async fn` on
    /// purpose: an `.await` in each arm would give the state machine a state
    /// per handler, reachable whatever `SERVED` says, and keep every handler
    /// in every binary. Here each arm builds its handler's future only under
    /// a `const` condition, so the arms outside the set are never compiled.
    fn dispatch<const SERVED: u64>(mut self, route: Route, id: Option<String>) -> Handled<'a> {
        let id = id.unwrap_or_default();
        match route {
            Route::CreateKey if const { Route::CreateKey.in_set(SERVED) } => {
                Box::pin(async move { self.create_key().await })
            }
            Route::ListKeys if const { Route::ListKeys.in_set(SERVED) } => {
                Box::pin(async move { self.list_keys().await })
            }
            Route::GetKey if const { Route::GetKey.in_set(SERVED) } => Box::pin(async move { self.get_key(&id).await }),
            Route::UpdateKey if const { Route::UpdateKey.in_set(SERVED) } => {
                Box::pin(async move { self.update_key(&id).await })
            }
            Route::RotateKey if const { Route::RotateKey.in_set(SERVED) } => {
                Box::pin(async move { self.rotate_key(&id).await })
            }
            Route::DeleteKey if const { Route::DeleteKey.in_set(SERVED) } => {
                Box::pin(async move { self.delete_key(&id).await })
            }
            Route::ReadValue if const { Route::ReadValue.in_set(SERVED) } => {
                Box::pin(async move { self.read_value(&id).await })
            }
            Route::CreateToken if const { Route::CreateToken.in_set(SERVED) } => {
                Box::pin(async move { self.create_token().await })
            }
            Route::ListTokens if const { Route::ListTokens.in_set(SERVED) } => {
                Box::pin(async move { self.list_tokens().await })
            }
            Route::RevokeToken if const { Route::RevokeToken.in_set(SERVED) } => {
                Box::pin(async move { self.revoke_token(&id).await })
            }
            Route::RevokeSelf if const { Route::RevokeSelf.in_set(SERVED) } => {
                Box::pin(async move { self.revoke_self().await })
            }
            Route::GetModes if const { Route::GetModes.in_set(SERVED) } => {
                Box::pin(async move { self.get_modes().await })
            }
            Route::PutModes if const { Route::PutModes.in_set(SERVED) } => {
                Box::pin(async move { self.put_modes().await })
            }
            Route::Usage if const { Route::Usage.in_set(SERVED) } => Box::pin(async move { self.usage().await }),
            Route::Audit if const { Route::Audit.in_set(SERVED) } => Box::pin(async move { self.audit().await }),
            Route::AuditDigests if const { Route::AuditDigests.in_set(SERVED) } => {
                Box::pin(async move { self.audit_digests().await })
            }
            Route::ListMembers if const { Route::ListMembers.in_set(SERVED) } => {
                Box::pin(async move { self.list_members().await })
            }
            Route::CreateMember if const { Route::CreateMember.in_set(SERVED) } => {
                Box::pin(async move { self.create_member().await })
            }
            Route::UpdateMember if const { Route::UpdateMember.in_set(SERVED) } => {
                Box::pin(async move { self.update_member(&id).await })
            }
            Route::DeleteMember if const { Route::DeleteMember.in_set(SERVED) } => {
                Box::pin(async move { self.delete_member(&id).await })
            }
            Route::DailyUsage if const { Route::DailyUsage.in_set(SERVED) } => {
                Box::pin(async move { self.daily_usage().await })
            }
            Route::GetGuardrails if const { Route::GetGuardrails.in_set(SERVED) } => {
                Box::pin(async move { self.get_guardrails().await })
            }
            Route::PromoteKey if const { Route::PromoteKey.in_set(SERVED) } => {
                Box::pin(async move { self.promote_key(&id).await })
            }
            Route::ListVersions if const { Route::ListVersions.in_set(SERVED) } => {
                Box::pin(async move { self.list_versions(&id).await })
            }
            Route::CreateIdentity if const { Route::CreateIdentity.in_set(SERVED) } => {
                Box::pin(async move { self.create_identity().await })
            }
            Route::ListIdentities if const { Route::ListIdentities.in_set(SERVED) } => {
                Box::pin(async move { self.list_identities().await })
            }
            Route::GetIdentity if const { Route::GetIdentity.in_set(SERVED) } => {
                Box::pin(async move { self.get_identity(&id).await })
            }
            Route::DeleteIdentity if const { Route::DeleteIdentity.in_set(SERVED) } => {
                Box::pin(async move { self.delete_identity(&id).await })
            }
            Route::ExchangeOidc if const { Route::ExchangeOidc.in_set(SERVED) } => {
                Box::pin(async move { self.exchange_oidc().await })
            }
            Route::ExchangeAws if const { Route::ExchangeAws.in_set(SERVED) } => {
                Box::pin(async move { self.exchange_aws().await })
            }
            Route::GithubSecretScanning if const { Route::GithubSecretScanning.in_set(SERVED) } => {
                Box::pin(async move { self.github_secret_scanning().await })
            }
            Route::ListProviders if const { Route::ListProviders.in_set(SERVED) } => {
                Box::pin(async move { self.list_providers().await })
            }
            Route::StartSignIn if const { Route::StartSignIn.in_set(SERVED) } => {
                Box::pin(async move { self.start_sign_in(&id).await })
            }
            Route::FinishSignIn if const { Route::FinishSignIn.in_set(SERVED) } => {
                Box::pin(async move { self.finish_sign_in(&id).await })
            }
            Route::CreateSession if const { Route::CreateSession.in_set(SERVED) } => {
                Box::pin(async move { self.create_session().await })
            }
            // Unreachable: `handle_set` checks the set first.
            _ => Box::pin(std::future::ready(Err(ApiError::NotFound("no such route")))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_table() {
        let cases = [
            ("GET", "/keys", Matched::Route(Route::ListKeys, None)),
            ("POST", "/keys", Matched::Route(Route::CreateKey, None)),
            ("PUT", "/keys", Matched::MethodNotAllowed("GET, POST".into())),
            ("GET", "/keys/key_1", Matched::Route(Route::GetKey, Some("key_1"))),
            ("PUT", "/keys/key_1/value", Matched::Route(Route::RotateKey, Some("key_1"))),
            ("GET", "/keys/key_1/value", Matched::MethodNotAllowed("PUT".into())),
            ("POST", "/keys/key_1/promote", Matched::Route(Route::PromoteKey, Some("key_1"))),
            ("GET", "/keys/key_1/promote", Matched::MethodNotAllowed("POST".into())),
            ("GET", "/keys/key_1/versions", Matched::Route(Route::ListVersions, Some("key_1"))),
            ("DELETE", "/keys/key_1/versions", Matched::MethodNotAllowed("GET".into())),
            ("GET", "/external/keys/key_1/value", Matched::Route(Route::ReadValue, Some("key_1"))),
            ("DELETE", "/tokens/self", Matched::Route(Route::RevokeSelf, None)),
            ("GET", "/tokens/self", Matched::MethodNotAllowed("DELETE".into())),
            ("DELETE", "/tokens/tok_1", Matched::Route(Route::RevokeToken, Some("tok_1"))),
            ("PUT", "/settings/modes", Matched::Route(Route::PutModes, None)),
            ("GET", "/settings/guardrails", Matched::Route(Route::GetGuardrails, None)),
            ("PUT", "/settings/guardrails", Matched::MethodNotAllowed("GET".into())),
            ("POST", "/identities", Matched::Route(Route::CreateIdentity, None)),
            ("DELETE", "/identities/idn_1", Matched::Route(Route::DeleteIdentity, Some("idn_1"))),
            ("PATCH", "/identities/idn_1", Matched::MethodNotAllowed("GET, DELETE".into())),
            ("POST", "/auth/oidc", Matched::Route(Route::ExchangeOidc, None)),
            ("GET", "/auth/aws", Matched::MethodNotAllowed("POST".into())),
            ("POST", "/github/secret-scanning", Matched::Route(Route::GithubSecretScanning, None)),
            ("GET", "/github/secret-scanning", Matched::MethodNotAllowed("POST".into())),
            ("POST", "/github", Matched::NotFound),
            ("POST", "/auth/other", Matched::NotFound),
            ("GET", "/auth/providers", Matched::Route(Route::ListProviders, None)),
            ("POST", "/auth/session", Matched::Route(Route::CreateSession, None)),
            ("GET", "/auth/session", Matched::MethodNotAllowed("POST".into())),
            ("GET", "/auth/github/start", Matched::Route(Route::StartSignIn, Some("github"))),
            ("GET", "/auth/oidc/callback", Matched::Route(Route::FinishSignIn, Some("oidc"))),
            ("POST", "/auth/oidc/callback", Matched::MethodNotAllowed("GET".into())),
            ("GET", "/audit/digests", Matched::Route(Route::AuditDigests, None)),
            ("POST", "/audit/digests", Matched::MethodNotAllowed("GET".into())),
            ("GET", "/audit/digests/x", Matched::NotFound),
            ("GET", "/console/", Matched::NotFound),
            ("GET", "/", Matched::NotFound),
            ("GET", "/keys/", Matched::NotFound),
            ("GET", "/nope", Matched::NotFound),
            ("GET", "", Matched::NotFound),
            ("GET", "//keys", Matched::NotFound),
        ];
        for (m, p, expected) in cases {
            assert_eq!(route(m, p), expected, "{m} {p}");
        }
    }

    #[test]
    fn route_sets() {
        assert_eq!(Route::ALL_SET.count_ones() as usize, Route::ALL.len());
        let submit = Route::set(&[Route::CreateKey, Route::RotateKey]);
        assert!(Route::CreateKey.in_set(submit) && Route::RotateKey.in_set(submit));
        assert!(Route::ALL.iter().filter(|r| r.in_set(submit)).count() == 2);
        assert!(Route::set_calls_kms(submit) && Route::set_calls_kms(Route::ReadValue.bit()));
        let no_kms = Route::ALL.iter().filter(|r| !matches!(r, Route::CreateKey | Route::RotateKey | Route::ReadValue));
        assert!(!Route::set_calls_kms(no_kms.fold(0, |s, r| s | r.bit())));
    }
}
