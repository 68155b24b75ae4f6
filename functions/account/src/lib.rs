//! Tenant-wide reads and settings: token list, mode settings, guardrails, usage, audit and its signed digests; also answers unknown paths (the API's catch-all route).

use ibyok::api::{App, Route};
use ibyok::lambda::GatewayResponse;
use ibyok::store::Store;
use lambda_http::Request;

/// The routes this function serves (its IAM policy grants only what they call).
pub const ROUTES: &[Route] = &[
    Route::ListTokens,
    Route::GetModes,
    Route::PutModes,
    Route::GetGuardrails,
    Route::Usage,
    Route::DailyUsage,
    Route::Audit,
    Route::AuditDigests,
];

/// [`ROUTES`] as a route set: only these routes' handlers are compiled in.
pub const SERVED: u64 = Route::set(ROUTES);

pub async fn handler<S: Store + ?Sized>(app: &App<S>, req: Request) -> GatewayResponse {
    ibyok::lambda::handle::<SERVED, S>(app, req).await
}
