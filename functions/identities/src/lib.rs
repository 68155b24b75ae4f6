//! Who may act: workload identities (create, list, get and delete the trust
//! rules; a deletion revokes every token exchanged through the identity)
//! and the tenant's members (list, invite, change a role, remove).

use ibyok::api::{App, Route};
use ibyok::lambda::GatewayResponse;
use ibyok::store::Store;
use lambda_http::Request;

/// The routes this function serves (its IAM policy grants only what they call).
pub const ROUTES: &[Route] = &[
    Route::CreateIdentity,
    Route::ListIdentities,
    Route::GetIdentity,
    Route::DeleteIdentity,
    Route::ListMembers,
    Route::CreateMember,
    Route::UpdateMember,
    Route::DeleteMember,
];

/// [`ROUTES`] as a route set: only these routes' handlers are compiled in.
pub const SERVED: u64 = Route::set(ROUTES);

pub async fn handler<S: Store + ?Sized>(app: &App<S>, req: Request) -> GatewayResponse {
    ibyok::lambda::handle::<SERVED, S>(app, req).await
}
