//! The scheduled work, in one place: the `cleanup` function runs it on its
//! schedule, and `ibyok dev` runs it periodically, so that a long-running
//! development server does not accumulate expired tokens or retired
//! versions either.

use crate::clock::Timestamp;
use crate::store::{PurgeReport, Store, StoreError};
use serde::Serialize;

/// How often `ibyok dev` runs [`run`].
pub const DEV_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MaintenanceReport {
    /// Tokens deleted.
    pub tokens: PurgeReport,
    /// Retired versions destroyed (their ciphertext and wrapped key).
    pub versions: PurgeReport,
}

/// Deletes expired tokens, and revoked ones past their grace period (the
/// purge rule, `TokenRecord::purge_second`), and destroys the previous
/// versions of keys whose window has closed. It reads only the index
/// entries that are due, so its reads grow with what it deletes. Run at
/// least daily: a retired version is destroyed within a day.
pub async fn run<S: Store + ?Sized>(store: &S, now: Timestamp) -> Result<MaintenanceReport, StoreError> {
    let (tokens, versions) = tokio::join!(store.purge_tokens(now), store.retire_versions(now));
    let report = MaintenanceReport { tokens: tokens?, versions: versions? };
    tracing::info!(
        items_read = report.tokens.items_read,
        deleted = report.tokens.deleted,
        versions_read = report.versions.items_read,
        versions_destroyed = report.versions.deleted,
        "cleanup"
    );
    Ok(report)
}
