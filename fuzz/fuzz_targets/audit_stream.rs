//! The usage function's input: any JSON as a delivery of the audit stream.
//! `batch_from_event` answers a batch or an error, never panics; a batch
//! counts at most one read per record, each +1 or −1, in stream order, and
//! names itself by its first record.
#![no_main]

use ibyok::store::dynamo::stream::batch_from_event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(Some(batch)) = batch_from_event(&event) else { return };
    let records = event["Records"].as_array().map_or(0, Vec::len);
    assert!(batch.reads.len() <= records);
    assert!(batch.reads.iter().all(|r| r.delta == 1 || r.delta == -1));
    assert_eq!(Some(batch.id.as_str()), event["Records"][0]["eventID"].as_str());
});
