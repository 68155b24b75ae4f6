//! The audit table's stream (event source mapping, in order per shard): a
//! batch of records becomes a [`UsageBatch`](ibyok::usage::UsageBatch) and
//! is added to the counters ([`ibyok::usage`]). An error fails the batch and
//! the mapping delivers it again; the store's checkpoint makes that exact.

use ibyok::clock::Clock;
use ibyok::store::dynamo::stream::{batch_from_event, StreamError};
use ibyok::store::{Store, StoreError};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Event(#[from] StreamError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one batch counted: how many reads (and take-backs) it held.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub records: usize,
    pub reads: usize,
}

/// Generic over the store, so that the binary links only what it calls.
pub async fn handler<S: Store + ?Sized>(store: &S, clock: &dyn Clock, event: &Value) -> Result<Applied, UsageError> {
    let records = event.get("Records").and_then(Value::as_array).map_or(0, Vec::len);
    let Some(batch) = batch_from_event(event)? else { return Ok(Applied { records, reads: 0 }) };
    store.apply_usage(&batch, clock.now()).await?;
    Ok(Applied { records, reads: batch.reads.len() })
}
