//! The audit table's stream (event source mapping, in order per shard): a
//! batch of records is added to the counters ([`ibyok::usage`]) by
//! [`apply_stream_event`]. An error fails the batch and the mapping delivers
//! it again; the store's checkpoint makes that exact.

use ibyok::clock::Clock;
use ibyok::store::dynamo::stream::apply_stream_event;
pub use ibyok::store::dynamo::stream::{Applied, ApplyError};
use ibyok::store::UsageStore;
use serde_json::Value;

/// Generic over the store, bounded by the one aggregate it writes (the
/// counters), so that the binary links only what it calls.
pub async fn handler<S: UsageStore + ?Sized>(
    store: &S,
    clock: &dyn Clock,
    event: &Value,
) -> Result<Applied, ApplyError> {
    apply_stream_event(store, clock.now(), event).await
}
