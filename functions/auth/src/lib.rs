//! Workload credentials exchanged for short-lived tokens, with no bearer
//! token: `POST /auth/oidc` (a JWT verified against its issuer's JWKS) and
//! `POST /auth/aws` (a signed `sts:GetCallerIdentity`, rebuilt and sent by
//! the server); and people's sign-in (`GET /auth/providers`, `GET
//! /auth/{provider}/start` and `/callback`, `POST /auth/session`), which
//! reaches the providers from the same egress subnets.

use ibyok::api::{App, Route};
use ibyok::lambda::GatewayResponse;
use ibyok::store::Store;
use lambda_http::Request;

/// The routes this function serves (its IAM policy grants only what they call).
pub const ROUTES: &[Route] = &[
    Route::ExchangeOidc,
    Route::ExchangeAws,
    Route::ListProviders,
    Route::StartSignIn,
    Route::FinishSignIn,
    Route::CreateSession,
];

/// [`ROUTES`] as a route set: only these routes' handlers are compiled in.
pub const SERVED: u64 = Route::set(ROUTES);

pub async fn handler<S: Store + ?Sized>(app: &App<S>, req: Request) -> GatewayResponse {
    ibyok::lambda::handle::<SERVED, S>(app, req).await
}
