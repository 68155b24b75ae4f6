//! The HTTP contract (`API.md`), independent of how requests arrive: the
//! Lambda functions, the development server and the tests all call
//! [`App::handle`] with an [`ApiRequest`].

mod account;
mod auth;
pub mod body;
pub mod error;
mod external;
mod keys;
mod tokens;
mod views;

pub use error::ApiError;

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::config::Config;
use crate::kms::Kms;
use crate::store::Store;
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
}

/// A field that may hold a secret: zeroized on drop, never printed.
#[derive(Clone, Default)]
pub struct Redacted<T: zeroize::Zeroize = String>(pub zeroize::Zeroizing<T>);

impl<T: zeroize::Zeroize> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: zeroize::Zeroize> std::ops::Deref for Redacted<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: zeroize::Zeroize> From<T> for Redacted<T> {
    fn from(v: T) -> Self {
        Self(zeroize::Zeroizing::new(v))
    }
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
        let mut body = Vec::with_capacity(256);
        // Serialising our own view types cannot fail.
        let _ = serde_json::to_writer(&mut body, value);
        Self { status, headers: vec![("content-type", "application/json".to_owned())], body: body.into() }
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
}

impl Route {
    pub const ALL: [Route; 16] = [
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
    ];

    /// Whether serving the route calls KMS (`GenerateDataKey` or `Decrypt`).
    pub fn needs_kms(self) -> bool {
        matches!(self, Route::CreateKey | Route::RotateKey | Route::ReadValue)
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
        ["external", "keys", id, "value"] => pick(&[("GET", Route::ReadValue)], Some(id)),
        ["tokens"] => pick(&[("GET", Route::ListTokens), ("POST", Route::CreateToken)], None),
        ["tokens", "self"] => pick(&[("DELETE", Route::RevokeSelf)], None),
        ["tokens", id] => pick(&[("DELETE", Route::RevokeToken)], Some(id)),
        ["settings", "modes"] => pick(&[("GET", Route::GetModes), ("PUT", Route::PutModes)], None),
        ["settings", "guardrails"] => pick(&[("GET", Route::GetGuardrails)], None),
        ["usage"] => pick(&[("GET", Route::Usage)], None),
        ["audit"] => pick(&[("GET", Route::Audit)], None),
        _ => Matched::NotFound,
    }
}

/// The service: the ports, the configuration and the clock.
pub struct App {
    pub store: Arc<dyn Store>,
    pub kms: Arc<dyn Kms>,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    /// The read path's plans (see `external`).
    read_plans: external::ReadPlans,
}

impl App {
    pub fn new(store: Arc<dyn Store>, kms: Arc<dyn Kms>, config: Config) -> Self {
        Self { store, kms, config, clock: Arc::new(SystemClock), read_plans: external::ReadPlans::default() }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Serves every route.
    pub async fn handle(&self, req: ApiRequest) -> ApiResponse {
        self.handle_routes(&Route::ALL, req).await
    }

    /// Serves the routes in `served`; any other known route is answered as
    /// an unknown path (a function only ever receives its own routes from
    /// API Gateway, so this only guards against a wiring mistake).
    pub async fn handle_routes(&self, served: &[Route], mut req: ApiRequest) -> ApiResponse {
        let started = Instant::now();
        if req.request_id.is_empty() {
            req.request_id = crate::ids::new_request_id();
        }
        let mut token_id = None;
        let mut token_expires_at = None;
        let (route_name, result) = if req.body.len() > body::MAX_BODY_BYTES {
            ("-", Err(ApiError::PayloadTooLarge))
        } else {
            match route(&req.method, &req.path) {
                Matched::Route(r, id) if served.contains(&r) => {
                    let ctx = Ctx {
                        app: self,
                        req: &req,
                        now: self.clock.now(),
                        token_id: &mut token_id,
                        token_expires_at: &mut token_expires_at,
                    };
                    (r.key(), ctx.dispatch(r, id.map(str::to_owned)).await)
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
pub(crate) struct Ctx<'a> {
    pub app: &'a App,
    pub req: &'a ApiRequest,
    pub now: Timestamp,
    /// The caller's token id, once known, for the request's log line.
    pub token_id: &'a mut Option<crate::ids::TokenId>,
    /// The caller's token's expiry, once the token is authenticated: sent
    /// back as [`TOKEN_EXPIRES_HEADER`].
    pub token_expires_at: &'a mut Option<Timestamp>,
}

impl Ctx<'_> {
    async fn dispatch(mut self, route: Route, id: Option<String>) -> Result<ApiResponse, ApiError> {
        let id = id.unwrap_or_default();
        match route {
            Route::CreateKey => self.create_key().await,
            Route::ListKeys => self.list_keys().await,
            Route::GetKey => self.get_key(&id).await,
            Route::UpdateKey => self.update_key(&id).await,
            Route::RotateKey => self.rotate_key(&id).await,
            Route::DeleteKey => self.delete_key(&id).await,
            Route::ReadValue => self.read_value(&id).await,
            Route::CreateToken => self.create_token().await,
            Route::ListTokens => self.list_tokens().await,
            Route::RevokeToken => self.revoke_token(&id).await,
            Route::RevokeSelf => self.revoke_self().await,
            Route::GetModes => self.get_modes().await,
            Route::PutModes => self.put_modes().await,
            Route::Usage => self.usage().await,
            Route::Audit => self.audit().await,
            Route::GetGuardrails => self.get_guardrails().await,
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
            ("GET", "/external/keys/key_1/value", Matched::Route(Route::ReadValue, Some("key_1"))),
            ("DELETE", "/tokens/self", Matched::Route(Route::RevokeSelf, None)),
            ("GET", "/tokens/self", Matched::MethodNotAllowed("DELETE".into())),
            ("DELETE", "/tokens/tok_1", Matched::Route(Route::RevokeToken, Some("tok_1"))),
            ("PUT", "/settings/modes", Matched::Route(Route::PutModes, None)),
            ("GET", "/settings/guardrails", Matched::Route(Route::GetGuardrails, None)),
            ("PUT", "/settings/guardrails", Matched::MethodNotAllowed("GET".into())),
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
}
