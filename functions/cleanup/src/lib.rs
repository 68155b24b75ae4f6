//! Scheduled: deletes expired tokens, and revoked ones past their grace
//! period. It reads only the purge index entries that are due, so its reads
//! grow with the number of tokens to delete, not with the table.

use ibyok::clock::Clock;
use ibyok::store::{PurgeReport, Store, StoreError};

pub async fn handler(store: &dyn Store, clock: &dyn Clock) -> Result<PurgeReport, StoreError> {
    let report = store.purge_tokens(clock.now()).await?;
    tracing::info!(items_read = report.items_read, deleted = report.deleted, "cleanup");
    Ok(report)
}
