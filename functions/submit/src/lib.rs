//! Stores and rotates key values: the only function allowed kms:GenerateDataKey.

use ibyok::api::{App, Route};
use ibyok::lambda::GatewayResponse;
use ibyok::store::Store;
use lambda_http::Request;

/// The routes this function serves (its IAM policy grants only what they call).
pub const ROUTES: &[Route] = &[Route::CreateKey, Route::RotateKey];

/// [`ROUTES`] as a route set: only these routes' handlers are compiled in.
pub const SERVED: u64 = Route::set(ROUTES);

pub async fn handler<S: Store + ?Sized>(app: &App<S>, req: Request) -> GatewayResponse {
    ibyok::lambda::handle::<SERVED, S>(app, req).await
}
