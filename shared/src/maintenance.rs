//! The scheduled work, in one place: the `cleanup` function runs it on its
//! schedule, and `ibyok dev` runs it periodically, so that a long-running
//! development server does not accumulate expired tokens either.

use crate::clock::Timestamp;
use crate::store::{PurgeReport, Store, StoreError};

/// How often `ibyok dev` runs [`run`].
pub const DEV_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Deletes expired tokens, and revoked ones past their grace period (the
/// purge rule, `TokenRecord::purge_second`). It reads only the purge index
/// entries that are due, so its reads grow with what it deletes.
pub async fn run<S: Store + ?Sized>(store: &S, now: Timestamp) -> Result<PurgeReport, StoreError> {
    let report = store.purge_tokens(now).await?;
    tracing::info!(items_read = report.items_read, deleted = report.deleted, "cleanup");
    Ok(report)
}
