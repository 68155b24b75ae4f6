//! Scheduled: deletes expired tokens, and revoked ones past their grace
//! period. It reads only the purge index entries that are due, so its reads
//! grow with the number of tokens to delete, not with the table.

use ibyok::clock::Clock;
use ibyok::store::{PurgeReport, Store, StoreError};

/// Generic over the store so that the binary, on the DynamoDB store itself,
/// links only the store methods cleanup calls (a `&dyn Store` would keep
/// every method through its vtable).
pub async fn handler<S: Store + ?Sized>(store: &S, clock: &dyn Clock) -> Result<PurgeReport, StoreError> {
    let report = store.purge_tokens(clock.now()).await?;
    tracing::info!(items_read = report.items_read, deleted = report.deleted, "cleanup");
    Ok(report)
}
