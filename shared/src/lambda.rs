//! The bridge between `lambda_http` and [`crate::api`].

use crate::api::{body::parse_query, ApiRequest, ApiResponse, App, Route};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

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

/// Runs an HTTP function serving `routes`.
pub async fn serve(routes: &'static [Route]) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let app = crate::aws::app_for(routes).await?;
    let app = &app;
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(handle(app, routes, req).await)
    }))
    .await
}
