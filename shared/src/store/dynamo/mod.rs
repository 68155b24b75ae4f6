//! The storage adapter over `aws-sdk-dynamodb`, one concern a file:
//!
//! | file | what |
//! |---|---|
//! | `reads.rs`, `tenants.rs`, `keys.rs`, `tokens.rs`, `audit.rs`, `digests.rs`, `limits.rs`, `notices.rs`, `identities.rs`, `members.rs` | each aggregate's trait of the port ([`Store`] is their sum) |
//! | `common.rs` | what those files share: transactional puts, landed-write checks, batch reads |
//! | `items.rs` | item mapping, the only place records become items and back |
//! | `identities.rs` | the identities aggregate: its items, and the exchange's one transaction |
//! | `errors.rs` | SDK failures sorted into the port's outcomes |
//! | `cursor.rs` | page cursors bound to their tenant |
//! | `retry.rs` | the one backoff helper for the loops the SDK does not retry |
//! | `tables.rs` | table creation from [`schema`] |
//! | `replicas.rs` | the copies of keys' and tokens' items that spread one key's or one token's reads |
//! | `migrate.rs` | `ibyok admin migrate`: the earlier layout's items moved |
//! | `stream.rs` | the audit stream's records as the usage function gets them, and what it does with them |
//! | `consumer.rs` | the stream read where no event source mapping does it (tests, `ibyok dev --aws`) |
//! | `usage.rs` | the counters ([`UsageStore`]): batches applied exactly, daily counts read |

use super::schema::{
    self, AUDIT_SHARDS, COUNTER_ID, CREATED_AT, EVENT_KEY, IDENTITY_ID, ISSUER_ID, KEY_ID, NOTICE_AT, NOTICE_INDEX,
    NOTICE_SHARD, PURGE_AT, PURGE_INDEX, PURGE_SHARD, PURGE_SHARDS, RECORD_REPLICAS, REPLICA_ID, RETIRE_AT,
    RETIRE_INDEX, RETIRE_SHARD, RETIRE_SHARDS, TENANT_ID, TENANT_INDEX, TENANT_REPLICAS, TOKEN_ID, TTL,
    USAGE_CHECKPOINTS, USAGE_KEY,
};
use super::*;
use crate::clock::{Month, Timestamp};
use crate::config::Tables;
use crate::envelope::{Envelope, NONCE_LEN};
use crate::fault::{Fault, FaultKind};
use crate::ids::{IdentityId, KeyId, TenantId, TokenId};
use crate::mode::ModeRequirement;
use crate::mode::{Environment, Mode, ModeOverrides, TenantModes};
use crate::token::{Grant, Scope, Scopes};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, DeleteRequest, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::{BTreeMap, HashMap};

mod common;
#[cfg(feature = "stream-consumer")]
pub mod consumer;
mod cursor;
mod errors;
// One file per aggregate, as the port is split.
mod audit;
mod digests;
mod identities;
mod items;
mod keys;
mod limits;
mod members;
mod migrate;
mod notices;
mod reads;
mod replicas;
mod retry;
mod signin;
pub mod stream;
mod tables;
mod tenants;
mod tokens;
mod usage;

use cursor::*;
use errors::*;
use items::*;
pub use items::{key_from, quota_counter_id, quota_shares, tenant_from, token_from, token_item, QUOTA_READS_PER_SHARD};
pub use migrate::MigrateReport;
use replicas::*;
use retry::Backoff;
pub use tables::create_tables;

/// A DynamoDB item as the SDK holds it.
pub type Item = HashMap<String, AttributeValue>;

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The tenants named `name` (a scan of the tenants table, which holds
    /// one small item per tenant). Operator path: `ibyok admin quota`.
    pub async fn tenants_named(&self, name: &str) -> Result<Vec<TenantRecord>, StoreError> {
        // The tenants' own items, not their replicas (`<id>#<r>`).
        let filter = "#name = :name AND NOT contains(#id, :hash)";
        let names = [("#name", "name"), ("#id", TENANT_ID)];
        let items = self.scan_all(&self.tables.tenants, filter, &names, &[(":name", name), (":hash", "#")]).await?;
        items.iter().map(tenant_from).collect()
    }

    /// Writes `items` in batches of 25, retrying what comes back unprocessed.
    pub(super) async fn batch_write(&self, table: &str, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for chunk in requests.chunks(25) {
            let mut pending = chunk.to_vec();
            let mut backoff = Backoff::new(6, std::time::Duration::from_millis(50));
            while !pending.is_empty() {
                let resp =
                    self.client.batch_write_item().request_items(table, pending).send().await.map_err(classify)?;
                pending = resp.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
                if !pending.is_empty() && !backoff.wait().await {
                    let f = Fault::new(FaultKind::Throttled, "DynamoDB BatchWriteItem kept unprocessed items");
                    return Err(StoreError::Unavailable(f));
                }
            }
        }
        Ok(())
    }

    /// Every item of `table` that `filter` keeps, every page, consistently
    /// (operator paths: a scan reads the whole table).
    pub(super) async fn scan_all(
        &self,
        table: &str,
        filter: &str,
        names: &[(&str, &str)],
        values: &[(&str, &str)],
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let resp = self
                .client
                .scan()
                .table_name(table)
                .filter_expression(filter)
                .set_expression_attribute_names(
                    (!names.is_empty())
                        .then(|| names.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
                )
                .set_expression_attribute_values(
                    (!values.is_empty()).then(|| values.iter().map(|(k, v)| ((*k).to_owned(), s(*v))).collect()),
                )
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            out.extend(resp.items.unwrap_or_default());
            start = resp.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}
