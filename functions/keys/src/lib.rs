//! Key metadata: list, show, update, delete; a key's versions: list them,
//! promote the pending one. No KMS access.

use ibyok::api::{App, Route};
use ibyok::lambda::GatewayResponse;
use ibyok::store::Store;
use lambda_http::Request;

/// The routes this function serves (its IAM policy grants only what they call).
pub const ROUTES: &[Route] =
    &[Route::ListKeys, Route::GetKey, Route::UpdateKey, Route::DeleteKey, Route::PromoteKey, Route::ListVersions];

/// [`ROUTES`] as a route set: only these routes' handlers are compiled in.
pub const SERVED: u64 = Route::set(ROUTES);

pub async fn handler<S: Store + ?Sized>(app: &App<S>, req: Request) -> GatewayResponse {
    ibyok::lambda::handle::<SERVED, S>(app, req).await
}
