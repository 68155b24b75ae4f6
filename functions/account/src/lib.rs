//! Tenant-wide reads and settings: token list, mode settings, guardrails, usage, audit; also answers unknown paths (the API's catch-all route).

use ibyok::api::{App, Route};
use lambda_http::{Body, Request, Response};

/// The routes this function serves (its IAM policy grants only what they call).
pub const ROUTES: &[Route] =
    &[Route::ListTokens, Route::GetModes, Route::PutModes, Route::GetGuardrails, Route::Usage, Route::Audit];

pub async fn handler(app: &App, req: Request) -> Response<Body> {
    ibyok::lambda::handle(app, ROUTES, req).await
}
