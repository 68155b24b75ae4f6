//! Stores and rotates key values: the only function allowed kms:GenerateDataKey.

use ibyok::api::{App, Route};
use lambda_http::{Body, Request, Response};

/// The routes this function serves (its IAM policy grants only what they call).
pub const ROUTES: &[Route] = &[Route::CreateKey, Route::RotateKey];

pub async fn handler(app: &App, req: Request) -> Response<Body> {
    ibyok::lambda::handle(app, ROUTES, req).await
}
