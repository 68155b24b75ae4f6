//! Revokes tokens and their descendants: on their owners' request, and on
//! GitHub's secret scanning reports of tokens found in public (no bearer
//! token: the report is signed by GitHub).

use ibyok::api::{App, Route};
use ibyok::lambda::GatewayResponse;
use ibyok::store::Store;
use lambda_http::Request;

/// The routes this function serves (its IAM policy grants only what they call).
pub const ROUTES: &[Route] = &[Route::RevokeToken, Route::RevokeSelf, Route::GithubSecretScanning];

/// [`ROUTES`] as a route set: only these routes' handlers are compiled in.
pub const SERVED: u64 = Route::set(ROUTES);

pub async fn handler<S: Store + ?Sized>(app: &App<S>, req: Request) -> GatewayResponse {
    ibyok::lambda::handle::<SERVED, S>(app, req).await
}
