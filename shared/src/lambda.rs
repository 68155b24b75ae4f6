//! The bridge between `lambda_http` and [`crate::api`], and the one place
//! the AWS clients are built for a function.

use crate::api::{body::parse_query, ApiRequest, ApiResponse, App, Route};
use crate::config::{Config, Tables};
use crate::kms::aws::AwsKms;
use crate::store::dynamo::DynamoStore;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use std::sync::Arc;
use std::time::Duration;

/// Converts an API Gateway (HTTP API, payload v2) request.
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
    ApiRequest {
        method: req.method().as_str().to_ascii_uppercase(),
        query: parse_query(req.uri().query()),
        authorization: header("authorization").map(Into::into),
        content_type: header("content-type"),
        user_agent: user_agent.or_else(|| header("user-agent")),
        source_ip,
        request_id,
        path,
        body: req.body().as_ref().to_vec().into(),
    }
}

pub fn to_lambda_response(resp: ApiResponse) -> Response<Body> {
    let mut builder = Response::builder().status(resp.status);
    for (k, v) in &resp.headers {
        builder = builder.header(*k, v);
    }
    let body =
        if resp.body.is_empty() { Body::Empty } else { Body::Text(String::from_utf8_lossy(&resp.body).into_owned()) };
    builder.body(body).unwrap_or_else(|_| Response::new(Body::Empty))
}

/// One invocation: what each function's handler does.
pub async fn handle(app: &App, routes: &[Route], req: Request) -> Response<Body> {
    to_lambda_response(app.handle_routes(routes, to_api_request(req)).await)
}

/// Timeouts and retries for Lambda, whose own timeout is short: a call that
/// has not connected in 1 s or answered in 2 s is retried, at most 3
/// attempts in all, within 5 s; after that the request answers 503.
pub fn sdk_timeouts() -> (aws_config::timeout::TimeoutConfig, aws_config::retry::RetryConfig) {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let retries = aws_config::retry::RetryConfig::standard().with_max_attempts(3);
    (timeouts, retries)
}

/// Loads the AWS configuration from the environment (`AWS_REGION`,
/// credentials, `AWS_ENDPOINT_URL` for a local server).
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    let (timeouts, retries) = sdk_timeouts();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await
}

/// The store alone (the cleanup function needs no KMS).
pub fn dynamo_store(sdk: &aws_config::SdkConfig) -> DynamoStore {
    DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), Tables::from_env())
}

/// The service with its AWS adapters, from the environment. `IBYOK_KMS_KEY_ID`
/// names the KMS key.
pub async fn aws_app() -> Result<App, lambda_http::Error> {
    let config = Config::from_env()?;
    let sdk = aws_sdk_config().await;
    let key_id = std::env::var("IBYOK_KMS_KEY_ID").map_err(|_| "IBYOK_KMS_KEY_ID is not set")?;
    let kms = AwsKms::new(aws_sdk_kms::Client::new(&sdk), key_id);
    Ok(App::new(Arc::new(dynamo_store(&sdk)), Arc::new(kms), config))
}

/// Runs an HTTP function serving `routes`.
pub async fn serve(routes: &'static [Route]) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let app = aws_app().await?;
    let app = &app;
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(handle(app, routes, req).await)
    }))
    .await
}
