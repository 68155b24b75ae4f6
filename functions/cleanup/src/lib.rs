//! Scheduled: the maintenance run (`ibyok::maintenance`): deletes expired
//! tokens, and revoked ones past their grace period, reading only the purge
//! index entries that are due.

use ibyok::clock::Clock;
use ibyok::store::{PurgeReport, Store, StoreError};

pub async fn handler(store: &dyn Store, clock: &dyn Clock) -> Result<PurgeReport, StoreError> {
    ibyok::maintenance::run(store, clock.now()).await
}
