//! What the usage function's event source mapping does in AWS, for where
//! there is none (the tests on moto, `ibyok dev --aws`): read the audit
//! table's stream in order, hand each page of records, as the Lambda event's
//! JSON, to the code the usage function runs ([`apply_stream_event`]), and
//! move on only once it succeeded. Feature `stream-consumer`.

use super::stream::{apply_stream_event, ApplyError};
use crate::clock::{Clock, SystemClock};
use crate::store::Store;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub struct UsageStream {
    dynamo: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    audit_table: String,
    store: Arc<dyn Store>,
    /// Per shard: one drain at a time, as the event source mapping runs one
    /// batch per shard at a time.
    positions: tokio::sync::Mutex<HashMap<String, Position>>,
}

struct Position {
    /// The last sequence number applied.
    applied: String,
    /// The first record of the last batch.
    last_batch_start: String,
}

fn attr_json(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        // The usage function reads strings and numbers only.
        _ => json!({ "NULL": true }),
    }
}

fn image_json(image: Option<&HashMap<String, AttributeValue>>) -> Option<Value> {
    image.map(|i| Value::Object(i.iter().map(|(k, v)| (k.clone(), attr_json(v))).collect::<Map<_, _>>()))
}

/// A record as the Lambda event carries it.
pub fn record_json(r: &Record) -> Value {
    let d = r.dynamodb();
    let mut dynamodb = json!({ "SequenceNumber": d.and_then(|d| d.sequence_number()).unwrap_or_default() });
    if let Some(new) = image_json(d.and_then(|d| d.new_image.as_ref())) {
        dynamodb["NewImage"] = new;
    }
    if let Some(old) = image_json(d.and_then(|d| d.old_image.as_ref())) {
        dynamodb["OldImage"] = old;
    }
    let mut out = json!({
        "eventID": r.event_id().unwrap_or_default(),
        "eventName": r.event_name().map(|e| e.as_str()).unwrap_or_default(),
        "dynamodb": dynamodb,
    });
    if let Some(u) = r.user_identity() {
        out["userIdentity"] = json!({ "type": u.r#type(), "principalId": u.principal_id() });
    }
    out
}

impl UsageStream {
    pub fn new(sdk: &aws_config::SdkConfig, audit_table: &str, store: Arc<dyn Store>) -> Self {
        Self {
            dynamo: aws_sdk_dynamodb::Client::new(sdk),
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            audit_table: audit_table.to_owned(),
            store,
            positions: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn stream(&self) -> Result<(String, Vec<String>), ConsumerError> {
        let table =
            self.dynamo.describe_table().table_name(&self.audit_table).send().await.map_err(ConsumerError::sdk)?;
        let arn = table.table().and_then(|t| t.latest_stream_arn()).ok_or(ConsumerError::NoStream)?.to_owned();
        let stream = self.streams.describe_stream().stream_arn(&arn).send().await.map_err(ConsumerError::sdk)?;
        let shards = stream
            .stream_description()
            .map(|d| d.shards().iter().filter_map(|s| s.shard_id().map(str::to_owned)).collect())
            .unwrap_or_default();
        Ok((arn, shards))
    }

    /// Applies every record written so far; answers how many records it read.
    pub async fn drain(&self) -> Result<usize, ConsumerError> {
        let mut positions = self.positions.lock().await;
        let (arn, shards) = self.stream().await?;
        let mut read = 0;
        for shard in shards {
            let from = match positions.get(&shard) {
                Some(p) => (ShardIteratorType::AfterSequenceNumber, Some(p.applied.clone())),
                None => (ShardIteratorType::TrimHorizon, None),
            };
            read += self.apply_from(&arn, &shard, from, &mut positions).await?;
        }
        Ok(read)
    }

    /// What the event source mapping does when a batch succeeded but its
    /// progress was lost: delivers it again from its first record, with
    /// whatever was written since.
    pub async fn redeliver_last(&self) -> Result<usize, ConsumerError> {
        let mut positions = self.positions.lock().await;
        let (arn, shards) = self.stream().await?;
        let mut read = 0;
        for shard in shards {
            let Some(start) = positions.get(&shard).map(|p| p.last_batch_start.clone()) else { continue };
            let from = (ShardIteratorType::AtSequenceNumber, Some(start));
            read += self.apply_from(&arn, &shard, from, &mut positions).await?;
        }
        Ok(read)
    }

    async fn apply_from(
        &self,
        arn: &str,
        shard: &str,
        (kind, seq): (ShardIteratorType, Option<String>),
        positions: &mut HashMap<String, Position>,
    ) -> Result<usize, ConsumerError> {
        let it = self.streams.get_shard_iterator().stream_arn(arn).shard_id(shard).shard_iterator_type(kind);
        let mut iterator = it.set_sequence_number(seq).send().await.map_err(ConsumerError::sdk)?.shard_iterator;
        let mut read = 0;
        while let Some(current) = iterator.take() {
            let page = self
                .streams
                .get_records()
                .shard_iterator(current)
                .limit(500)
                .send()
                .await
                .map_err(ConsumerError::sdk)?;
            let seq =
                |r: Option<&Record>| r.and_then(|r| r.dynamodb()).and_then(|d| d.sequence_number()).map(str::to_owned);
            let (Some(first), Some(last)) = (seq(page.records().first()), seq(page.records().last())) else { break };
            let event = json!({ "Records": page.records().iter().map(record_json).collect::<Vec<_>>() });
            apply_stream_event(self.store.as_ref(), SystemClock.now(), &event).await?;
            positions.insert(shard.to_owned(), Position { applied: last, last_batch_start: first });
            read += page.records().len();
            iterator = page.next_shard_iterator;
        }
        Ok(read)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("the audit table has no stream")]
    NoStream,
    #[error("reading the audit stream failed: {0}")]
    Sdk(String),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl ConsumerError {
    fn sdk(e: impl std::error::Error + 'static) -> Self {
        ConsumerError::Sdk(crate::fault::chain(&e))
    }
}
