//! The bridge between the Lambda runtime and [`crate::api`]: API Gateway
//! (HTTP API, payload v2) events in, through `lambda_http`'s request parsing;
//! responses out in the payload v2 shape, serialised straight from the
//! zeroizing [`ApiResponse`] body (no `lambda_http::Body` copy of it).

use crate::api::{body::parse_query, ApiRequest, ApiResponse, App, Route};
use crate::store::dynamo::DynamoStore;
use crate::store::Store;
use lambda_http::lambda_runtime::{self, LambdaEvent};
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::{Body, Request, RequestExt};
use serde::ser::{Serialize, SerializeMap, SerializeStruct, Serializer};

/// Converts an API Gateway (HTTP API, payload v2) request. The body moves
/// into the request's zeroizing buffer without a copy.
pub fn to_api_request(req: Request) -> ApiRequest {
    let (request_id, source_ip, user_agent) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (
            ctx.request_id.clone().unwrap_or_default(),
            ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok()),
            ctx.http.user_agent.clone(),
        ),
        _ => (String::new(), None, None),
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = match req.raw_http_path() {
        "" => req.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let (method, query) = (req.method().as_str().to_ascii_uppercase(), parse_query(req.uri().query()));
    let (authorization, content_type) = (header("authorization").map(Into::into), header("content-type"));
    // API Gateway's payload v2 carries cookies apart; lambda_http joins them
    // into the `Cookie` header.
    let cookie = header("cookie").map(Into::into);
    let user_agent = user_agent.or_else(|| header("user-agent"));
    let (github_key_id, github_signature) =
        (header(crate::scanning::KEY_ID_HEADER), header(crate::scanning::SIGNATURE_HEADER));
    let body = match req.into_body() {
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    ApiRequest {
        method,
        query,
        authorization,
        cookie,
        content_type,
        user_agent,
        source_ip,
        request_id,
        path,
        body: body.into(),
        github_key_id,
        github_signature,
    }
}

/// An [`ApiResponse`] in API Gateway's payload v2 response shape. Its body
/// is serialised from the zeroizing buffer, which is wiped when the runtime
/// drops the response after sending it.
#[derive(Debug)]
pub struct GatewayResponse(pub ApiResponse);

impl Serialize for GatewayResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Headers<'a>(&'a [(&'static str, String)]);
        impl Serialize for Headers<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in self.0 {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        let resp = &self.0;
        let body = resp.body.expose();
        let text = std::str::from_utf8(body);
        let mut out = s.serialize_struct("GatewayResponse", 5)?;
        out.serialize_field("statusCode", &resp.status)?;
        // Payload v2 sends `Set-Cookie` through `cookies`, not `headers`.
        let (cookies, headers): (Vec<_>, Vec<_>) =
            resp.headers.iter().cloned().partition(|(k, _)| k.eq_ignore_ascii_case("set-cookie"));
        out.serialize_field("headers", &Headers(&headers))?;
        if body.is_empty() {
            out.skip_field("body")?;
        } else if let Ok(text) = text {
            out.serialize_field("body", text)?;
        } else {
            // Not produced by the API (its bodies are JSON); kept correct.
            use base64::Engine;
            out.serialize_field("body", &base64::engine::general_purpose::STANDARD.encode(body))?;
        }
        out.serialize_field("isBase64Encoded", &(!body.is_empty() && text.is_err()))?;
        let cookies: Vec<&str> = cookies.iter().map(|(_, v)| v.as_str()).collect();
        out.serialize_field("cookies", &cookies)?;
        out.end()
    }
}

/// One invocation of a function serving the routes in the set `SERVED`
/// (see [`Route::set`]): only their handlers are compiled into it.
pub async fn handle<const SERVED: u64, S: Store + ?Sized>(app: &App<S>, req: Request) -> GatewayResponse {
    GatewayResponse(app.handle_set::<SERVED>(to_api_request(req)).await)
}

/// Runs an HTTP function serving the route set `SERVED`. A set with no
/// route that calls KMS builds no KMS client: the function's binary does
/// not link one.
pub async fn serve<const SERVED: u64>() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    // The future is chosen under a `const` condition and awaited once: an
    // `.await` in each branch would keep both (and the KMS client) linked.
    type Built = std::pin::Pin<Box<dyn std::future::Future<Output = Result<App<DynamoStore>, crate::aws::Error>>>>;
    let build: Built = if const { Route::set_calls_kms(SERVED) } {
        Box::pin(crate::aws::app())
    } else {
        Box::pin(crate::aws::app_without_kms())
    };
    let mut app = build.await?;
    // `GET /audit/digests` publishes the digests' public key (`kms:GetPublicKey`).
    if const { Route::AuditDigests.in_set(SERVED) } {
        app = app.with_audit_signer(crate::aws::audit_signer().await);
    }
    // `POST /github/secret-scanning` notifies tenants of leaked tokens
    // through the notices' topic (`IBYOK_NOTICE_TOPIC_ARN`).
    // Sign-in's client secrets, from SSM Parameter Store (a failure fails
    // the start, naming the parameter).
    #[cfg(feature = "ssm")]
    if const { Route::FinishSignIn.in_set(SERVED) } {
        crate::aws::sign_in_secrets(&mut app.config.sign_in).await?;
    }
    #[cfg(feature = "sns")]
    let app = if const { Route::GithubSecretScanning.in_set(SERVED) } {
        app.with_notifier(crate::aws::notifier().await)
    } else {
        app
    };
    let app = &app;
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<LambdaRequest>| async move {
        let LambdaEvent { payload, context } = event;
        let req: Request = payload.into();
        Ok::<_, std::convert::Infallible>(handle::<SERVED, DynamoStore>(app, req.with_lambda_context(context)).await)
    }))
    .await
}
