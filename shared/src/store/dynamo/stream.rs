//! The audit table's stream records, as the usage function receives them
//! from its event source mapping (the Lambda event's JSON), made into a
//! [`UsageBatch`]. The test tooling reads moto's stream into the same JSON
//! and goes through this code too.

use super::{audit_tenant, KEY_ID, TENANT_ID, TOKEN_ID};
use crate::clock::Timestamp;
use crate::ids::{KeyId, TenantId, TokenId};
use crate::store::{StoreError, UsageStore};
use crate::usage::{CountedRead, SeqNo, UsageBatch};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("audit stream event: {0}")]
pub struct StreamError(String);

fn attr<'a>(image: &'a Value, name: &str, ty: &str) -> Option<&'a str> {
    image.get(name)?.get(ty)?.as_str()
}

/// A successful read's event: (tenant, key, token, at).
fn counted_read(image: Option<&Value>) -> Option<(TenantId, KeyId, TokenId, Timestamp)> {
    let image = image?;
    if attr(image, "action", "S")? != "key.read" || attr(image, "outcome", "S")? != "ok" {
        return None;
    }
    let tenant = TenantId::from_stored(audit_tenant(attr(image, TENANT_ID, "S")?).to_owned());
    let key = KeyId::from_stored(attr(image, KEY_ID, "S")?.to_owned());
    let token = TokenId::from_stored(attr(image, TOKEN_ID, "S")?.to_owned());
    let at = Timestamp::from_millis(attr(image, "at", "N")?.parse().ok()?);
    Some((tenant, key, token, at))
}

/// Records that the retention TTL removed carry DynamoDB's own identity.
fn removed_by_ttl(record: &Value) -> bool {
    record.pointer("/userIdentity/principalId").and_then(Value::as_str) == Some("dynamodb.amazonaws.com")
}

/// The batch in a Lambda event of the audit stream (`{"Records": [...]}`);
/// `None` for an event with no records.
pub fn batch_from_event(event: &Value) -> Result<Option<UsageBatch>, StreamError> {
    let records =
        event.get("Records").and_then(Value::as_array).ok_or_else(|| StreamError("no Records array".into()))?;
    let Some(first) = records.first() else { return Ok(None) };
    let id = first
        .get("eventID")
        .and_then(Value::as_str)
        .ok_or_else(|| StreamError("a record without eventID".into()))?
        .to_owned();
    let mut reads = Vec::new();
    let mut last_seq = None;
    for r in records {
        let seq = r
            .pointer("/dynamodb/SequenceNumber")
            .and_then(Value::as_str)
            .ok_or_else(|| StreamError("a record without SequenceNumber".into()))?;
        let seq = SeqNo(seq.to_owned());
        let new = counted_read(r.pointer("/dynamodb/NewImage"));
        let old = if removed_by_ttl(r) { None } else { counted_read(r.pointer("/dynamodb/OldImage")) };
        // An event is written once and never changed: an insert counts +1,
        // a deletion (a read taken back) −1.
        match (new, old) {
            (Some(n), None) => reads.push(read(&seq, n, 1)),
            (None, Some(o)) => reads.push(read(&seq, o, -1)),
            _ => {}
        }
        last_seq = Some(seq);
    }
    let last_seq = last_seq.ok_or_else(|| StreamError("no records".into()))?;
    Ok(Some(UsageBatch { id, last_seq, reads }))
}

/// What one delivery counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Records in the delivery.
    pub records: usize,
    /// Reads (and take-backs) among them.
    pub reads: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Event(#[from] StreamError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The usage function's work on one delivery of the audit stream: its batch
/// added to the counters ([`UsageStore::apply_usage`]). An error fails the
/// delivery, which comes again; the store's checkpoint makes that exact.
pub async fn apply_stream_event<S: UsageStore + ?Sized>(
    store: &S,
    now: Timestamp,
    event: &Value,
) -> Result<Applied, ApplyError> {
    let records = event.get("Records").and_then(Value::as_array).map_or(0, Vec::len);
    let Some(batch) = batch_from_event(event)? else { return Ok(Applied { records, reads: 0 }) };
    store.apply_usage(&batch, now).await?;
    Ok(Applied { records, reads: batch.reads.len() })
}

fn read(
    seq: &SeqNo,
    (tenant_id, key_id, token_id, at): (TenantId, KeyId, TokenId, Timestamp),
    delta: i64,
) -> CountedRead {
    CountedRead { seq: seq.clone(), tenant_id, key_id, token_id, at, delta }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(action: &str, outcome: &str) -> Value {
        json!({
            "tenantId": {"S": "ten_abc#07"}, "eventKey": {"S": "001800000000000#x"},
            "action": {"S": action}, "outcome": {"S": outcome},
            "keyId": {"S": "key_k"}, "tokenId": {"S": "tok_t"}, "at": {"N": "1800000000000"}
        })
    }

    #[test]
    fn inserts_count_removals_take_back_ttl_and_other_events_do_not() {
        let event = json!({"Records": [
            {"eventID": "e1", "eventName": "INSERT", "dynamodb": {"SequenceNumber": "100", "NewImage": image("key.read", "ok")}},
            {"eventID": "e2", "eventName": "INSERT", "dynamodb": {"SequenceNumber": "101", "NewImage": image("key.create", "ok")}},
            {"eventID": "e3", "eventName": "INSERT", "dynamodb": {"SequenceNumber": "102", "NewImage": image("auth.denied", "denied")}},
            {"eventID": "e4", "eventName": "REMOVE", "dynamodb": {"SequenceNumber": "103", "OldImage": image("key.read", "ok")}},
            {"eventID": "e5", "eventName": "REMOVE", "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
             "dynamodb": {"SequenceNumber": "104", "OldImage": image("key.read", "ok")}}
        ]});
        let batch = batch_from_event(&event).unwrap().unwrap();
        assert_eq!(batch.id, "e1");
        assert_eq!(batch.last_seq, SeqNo("104".into()));
        assert_eq!(batch.reads.iter().map(|r| r.delta).collect::<Vec<_>>(), vec![1, -1]);
        assert_eq!(batch.reads[0].tenant_id.as_str(), "ten_abc");
        assert!(batch_from_event(&json!({"Records": []})).unwrap().is_none());
        assert!(batch_from_event(&json!({"nope": 1})).is_err());
    }
}
