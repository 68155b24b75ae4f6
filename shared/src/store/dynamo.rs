//! The storage adapter over `aws-sdk-dynamodb`. Item mapping lives here and
//! nowhere else: `*_item` functions write records, `*_from` read them back.

use super::schema::{self, PURGE_INDEX, PURGE_SHARDS, TENANT_INDEX};
use super::*;
use crate::config::Tables;
use crate::envelope::{Envelope, NONCE_LEN};
use crate::token::{Grant, Scope, Scopes};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, DeleteRequest, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ReturnValue, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::{BTreeMap, HashMap};

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
}

// ---------------------------------------------------------------- errors

const UNAVAILABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// Sorts an SDK failure. The SDK has already retried what it retries.
fn classify<E: ProvideErrorMetadata + std::fmt::Debug>(err: SdkError<E>) -> StoreError {
    let code = err.as_service_error().and_then(|e| e.code()).map(str::to_owned);
    match code.as_deref() {
        Some("ConditionalCheckFailedException") => StoreError::Conflict("condition failed"),
        Some(c) if UNAVAILABLE_CODES.contains(&c) => StoreError::Unavailable(c.to_owned()),
        Some(c) => StoreError::Internal(c.to_owned()),
        None => match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                StoreError::Unavailable("no response".into())
            }
            SdkError::ServiceError(e) if e.raw().status().is_server_error() => {
                StoreError::Unavailable(format!("status {}", e.raw().status().as_u16()))
            }
            _ => StoreError::Internal("unclassified DynamoDB error".into()),
        },
    }
}

/// A cancelled transaction: which of its items failed a condition, if any.
fn classify_tx(err: SdkError<TransactWriteItemsError>) -> Result<usize, StoreError> {
    if let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error() {
        let reasons = e.cancellation_reasons();
        if let Some(i) = reasons.iter().position(|r| r.code() == Some("ConditionalCheckFailed")) {
            return Ok(i);
        }
        if reasons.iter().any(|r| {
            matches!(r.code(), Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"))
        }) {
            return Err(StoreError::Unavailable("transaction conflict or throttling".into()));
        }
    }
    Err(classify(err))
}

fn build<T>(r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Internal(format!("request build: {e}")))
}

/// How a counter increment failed.
enum Increment {
    /// Certainly not counted.
    NotApplied(StoreError),
    /// Perhaps counted (the response was lost or the server failed after).
    Unknown(StoreError),
}

impl Increment {
    fn into_store(self) -> StoreError {
        match self {
            Increment::NotApplied(e) | Increment::Unknown(e) => e,
        }
    }
}

// ---------------------------------------------------------------- values

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn b(v: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(v))
}
fn list(v: impl IntoIterator<Item = String>) -> AttributeValue {
    AttributeValue::L(v.into_iter().map(AttributeValue::S).collect())
}

fn bad(what: &str) -> StoreError {
    StoreError::Internal(format!("stored item has a bad or missing `{what}`"))
}

fn get_s<'a>(item: &'a Item, k: &str) -> Result<&'a str, StoreError> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str).ok_or_else(|| bad(k))
}
fn opt_s(item: &Item, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}
fn get_n<T: std::str::FromStr>(item: &Item, k: &str) -> Result<T, StoreError> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|x| x.parse().ok()).ok_or_else(|| bad(k))
}
fn opt_n<T: std::str::FromStr>(item: &Item, k: &str) -> Option<T> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|x| x.parse().ok())
}
fn get_b<'a>(item: &'a Item, k: &str) -> Result<&'a [u8], StoreError> {
    item.get(k).and_then(|v| v.as_b().ok()).map(|b| b.as_ref()).ok_or_else(|| bad(k))
}
fn opt_list(item: &Item, k: &str) -> Result<Option<Vec<String>>, StoreError> {
    match item.get(k) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::L(l)) => {
            l.iter().map(|v| v.as_s().cloned().map_err(|_| bad(k))).collect::<Result<_, _>>().map(Some)
        }
        Some(_) => Err(bad(k)),
    }
}
fn ts(item: &Item, k: &str) -> Result<Timestamp, StoreError> {
    get_n(item, k).map(Timestamp::from_millis)
}
fn opt_ts(item: &Item, k: &str) -> Option<Timestamp> {
    opt_n(item, k).map(Timestamp::from_millis)
}

fn purge_shard(id: &TokenId) -> String {
    (id.as_str().bytes().last().unwrap_or(0) % PURGE_SHARDS).to_string()
}

// ---------------------------------------------------------------- records

/// Encodes a token record as its stored item (also used to seed benchmarks).
pub fn token_item(t: &TokenRecord) -> Item {
    let purge = t.grant.expires_at;
    let mut item = Item::from([
        ("tokenId".into(), s(t.token_id.as_str())),
        ("tenantId".into(), s(t.tenant_id.as_str())),
        ("verifier".into(), b(&t.verifier)),
        ("name".into(), s(&t.name)),
        ("scopes".into(), list(t.grant.scopes.iter().map(|s| s.as_str().to_owned()))),
        ("createdAt".into(), n(t.created_at.millis())),
        ("expiresAt".into(), n(t.grant.expires_at.millis())),
        ("ancestors".into(), list(t.ancestors.iter().map(ToString::to_string))),
        ("uses".into(), n(t.uses)),
        ("purgeShard".into(), s(purge_shard(&t.token_id))),
        ("purgeAt".into(), n(purge.seconds())),
        ("ttl".into(), n(purge.seconds() + TTL_MARGIN_SECONDS)),
    ]);
    if let Some(k) = &t.grant.key_ids {
        item.insert("keyIds".into(), list(k.iter().map(ToString::to_string)));
    }
    if let Some(c) = &t.grant.allowed_cidrs {
        item.insert("allowedCidrs".into(), list(c.iter().map(ToString::to_string)));
    }
    if let Some(p) = &t.issued_by {
        item.insert("issuedBy".into(), s(p.as_str()));
    }
    if let Some(r) = t.revoked_at {
        item.insert("revokedAt".into(), n(r.millis()));
    }
    if let Some(u) = t.last_used_at {
        item.insert("lastUsedAt".into(), n(u.millis()));
    }
    item
}

/// The DynamoDB TTL deletes an item this long after cleanup should have: it
/// is a backstop, not the mechanism.
const TTL_MARGIN_SECONDS: i64 = 86_400;

/// Decodes a stored token item; a malformed item is `StoreError::Internal`.
pub fn token_from(item: &Item) -> Result<TokenRecord, StoreError> {
    let scopes = opt_list(item, "scopes")?
        .ok_or_else(|| bad("scopes"))?
        .iter()
        .map(|x| Scope::parse(x).ok_or_else(|| bad("scopes")))
        .collect::<Result<Scopes, _>>()?;
    let allowed_cidrs = match opt_list(item, "allowedCidrs")? {
        None => None,
        Some(v) => Some(v.iter().map(|c| c.parse().map_err(|_| bad("allowedCidrs"))).collect::<Result<_, _>>()?),
    };
    Ok(TokenRecord {
        token_id: TokenId::from_stored(get_s(item, "tokenId")?.to_owned()),
        tenant_id: TenantId::parse(get_s(item, "tenantId")?).ok_or_else(|| bad("tenantId"))?,
        verifier: get_b(item, "verifier")?.to_vec(),
        name: get_s(item, "name")?.to_owned(),
        grant: Grant {
            scopes,
            expires_at: ts(item, "expiresAt")?,
            key_ids: opt_list(item, "keyIds")?.map(|v| v.into_iter().map(KeyId::from_stored).collect()),
            allowed_cidrs,
        },
        created_at: ts(item, "createdAt")?,
        issued_by: opt_s(item, "issuedBy").map(TokenId::from_stored),
        ancestors: opt_list(item, "ancestors")?.unwrap_or_default().into_iter().map(TokenId::from_stored).collect(),
        revoked_at: opt_ts(item, "revokedAt"),
        last_used_at: opt_ts(item, "lastUsedAt"),
        uses: opt_n(item, "uses").unwrap_or(0),
    })
}

fn overrides_value(o: &ModeOverrides) -> AttributeValue {
    AttributeValue::M(o.iter().map(|(e, m)| (e.as_str().to_owned(), s(m.as_str()))).collect())
}

fn key_item(k: &KeyRecord) -> Item {
    let mut item = Item::from([
        ("keyId".into(), s(k.key_id.as_str())),
        ("tenantId".into(), s(k.tenant_id.as_str())),
        ("name".into(), s(&k.name)),
        ("llmType".into(), s(&k.llm_type)),
        ("preview".into(), s(&k.preview)),
        ("modeOverrides".into(), overrides_value(&k.mode_overrides)),
        ("createdAt".into(), n(k.created_at.millis())),
        ("updatedAt".into(), n(k.updated_at.millis())),
        ("retrievals".into(), n(k.retrievals)),
        ("ciphertext".into(), b(&k.envelope.ciphertext)),
        ("nonce".into(), b(&k.envelope.nonce)),
        ("wrappedKey".into(), b(&k.envelope.wrapped_key)),
    ]);
    if let Some(u) = k.last_used_at {
        item.insert("lastUsedAt".into(), n(u.millis()));
    }
    item
}

/// Decodes a stored key item (the envelope decoder); a malformed item is
/// `StoreError::Internal`, never a panic.
pub fn key_from(item: &Item) -> Result<KeyRecord, StoreError> {
    let mut mode_overrides = ModeOverrides::new();
    if let Some(AttributeValue::M(m)) = item.get("modeOverrides") {
        for (env, mode) in m {
            let env = Environment::parse(env).ok_or_else(|| bad("modeOverrides"))?;
            let mode = mode.as_s().ok().and_then(|x| Mode::parse(x)).ok_or_else(|| bad("modeOverrides"))?;
            mode_overrides.insert(env, mode);
        }
    }
    let nonce: [u8; NONCE_LEN] = get_b(item, "nonce")?.try_into().map_err(|_| bad("nonce"))?;
    Ok(KeyRecord {
        key_id: KeyId::from_stored(get_s(item, "keyId")?.to_owned()),
        tenant_id: TenantId::parse(get_s(item, "tenantId")?).ok_or_else(|| bad("tenantId"))?,
        name: get_s(item, "name")?.to_owned(),
        llm_type: get_s(item, "llmType")?.to_owned(),
        preview: get_s(item, "preview")?.to_owned(),
        mode_overrides,
        created_at: ts(item, "createdAt")?,
        updated_at: ts(item, "updatedAt")?,
        last_used_at: opt_ts(item, "lastUsedAt"),
        retrievals: opt_n(item, "retrievals").unwrap_or(0),
        envelope: Envelope {
            ciphertext: get_b(item, "ciphertext")?.to_vec(),
            nonce,
            wrapped_key: get_b(item, "wrappedKey")?.to_vec(),
        },
    })
}

fn tenant_item(t: &TenantRecord) -> Item {
    Item::from([
        ("tenantId".into(), s(t.tenant_id.as_str())),
        ("name".into(), s(&t.name)),
        ("createdAt".into(), n(t.created_at.millis())),
        ("development".into(), s(t.modes.development.as_str())),
        ("staging".into(), s(t.modes.staging.as_str())),
        ("production".into(), s(t.modes.production.as_str())),
    ])
}

fn modes_from(item: &Item) -> Result<TenantModes, StoreError> {
    let mut modes = TenantModes::default();
    for env in Environment::ALL {
        if let Some(m) = opt_s(item, env.as_str()) {
            modes.set(env, Mode::parse(&m).ok_or_else(|| bad(env.as_str()))?);
        }
    }
    Ok(modes)
}

fn tenant_from(item: &Item) -> Result<TenantRecord, StoreError> {
    Ok(TenantRecord {
        tenant_id: TenantId::parse(get_s(item, "tenantId")?).ok_or_else(|| bad("tenantId"))?,
        name: opt_s(item, "name").unwrap_or_default(),
        modes: modes_from(item)?,
        created_at: opt_ts(item, "createdAt").unwrap_or(Timestamp::from_millis(0)),
    })
}

fn audit_item(e: &AuditEvent) -> Result<Item, StoreError> {
    let tenant = e.tenant_id.as_ref().ok_or_else(|| StoreError::Internal("audit event without tenant".into()))?;
    let mut item = Item::from([
        ("tenantId".into(), s(tenant.as_str())),
        ("eventKey".into(), s(format!("{:015}#{}", e.at.millis(), crate::ids::random_base62(10)))),
        ("at".into(), n(e.at.millis())),
        ("requestId".into(), s(&e.request_id)),
        ("action".into(), s(enum_str(&e.action))),
        ("outcome".into(), s(enum_str(&e.outcome))),
    ]);
    let mut opt = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            item.insert(k.to_owned(), s(v));
        }
    };
    opt("tokenId", e.token_id.as_ref().map(ToString::to_string));
    opt("keyId", e.key_id.as_ref().map(ToString::to_string));
    opt("environment", e.environment.map(|x| x.as_str().to_owned()));
    opt("effectiveMode", e.effective_mode.map(|x| x.as_str().to_owned()));
    opt("sourceIp", e.source_ip.clone());
    opt("userAgent", e.user_agent.clone());
    if let Some(r) = e.retain_until {
        item.insert("ttl".into(), n(r.seconds()));
    }
    Ok(item)
}

/// The serde name of a unit enum variant.
fn enum_str<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn enum_from<T: serde::de::DeserializeOwned>(item: &Item, k: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(get_s(item, k)?.to_owned())).map_err(|_| bad(k))
}

fn audit_from(item: &Item) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        tenant_id: Some(TenantId::from_stored(get_s(item, "tenantId")?.to_owned())),
        at: ts(item, "at")?,
        request_id: get_s(item, "requestId")?.to_owned(),
        action: enum_from(item, "action")?,
        token_id: opt_s(item, "tokenId").map(TokenId::from_stored),
        key_id: opt_s(item, "keyId").map(KeyId::from_stored),
        environment: opt_s(item, "environment").and_then(|x| Environment::parse(&x)),
        effective_mode: opt_s(item, "effectiveMode").and_then(|x| Mode::parse(&x)),
        outcome: enum_from(item, "outcome")?,
        source_ip: opt_s(item, "sourceIp"),
        user_agent: opt_s(item, "userAgent"),
        retain_until: opt_n::<i64>(item, "ttl").map(|x| Timestamp::from_millis(x * 1000)),
    })
}

// ---------------------------------------------------------------- cursors

/// A cursor is the query's `LastEvaluatedKey`, base64url JSON; it must name
/// the caller's tenant.
fn encode_cursor(key: &Item) -> Option<String> {
    let mut map = BTreeMap::new();
    for (k, v) in key {
        let text = match v {
            AttributeValue::S(x) => format!("S{x}"),
            AttributeValue::N(x) => format!("N{x}"),
            _ => return None,
        };
        map.insert(k.clone(), text);
    }
    serde_json::to_vec(&map).ok().map(|j| URL_SAFE_NO_PAD.encode(j))
}

fn decode_cursor(tenant: &TenantId, cursor: Option<&str>) -> Result<Option<Item>, StoreError> {
    let Some(c) = cursor else { return Ok(None) };
    let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| StoreError::BadCursor)?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
    if map.len() > 4 || map.get("tenantId").map(String::as_str) != Some(&format!("S{tenant}")) {
        return Err(StoreError::BadCursor);
    }
    let mut item = Item::new();
    for (k, v) in map {
        let value = match v.split_at_checked(1) {
            Some(("S", x)) => s(x),
            Some(("N", x)) if x.parse::<i64>().is_ok() => n(x),
            _ => return Err(StoreError::BadCursor),
        };
        item.insert(k, value);
    }
    Ok(Some(item))
}

// ---------------------------------------------------------------- helpers

impl DynamoStore {
    fn put(&self, table: &str, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
        let put = build(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .set_condition_expression(condition.map(Into::into))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn audit_put(&self, e: &AuditEvent) -> Result<TransactWriteItem, StoreError> {
        self.put(&self.tables.audit, audit_item(e)?, None)
    }

    /// Runs a transaction; a failed condition on item `i` becomes `on_fail(i)`.
    async fn transact_or(
        &self,
        items: Vec<TransactWriteItem>,
        on_fail: impl Fn(usize) -> StoreError,
    ) -> Result<(), StoreError> {
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify_tx(e).map_or_else(|other| other, on_fail)),
        }
    }

    /// Adds one to a counter and sets `lastUsedAt`, at most once: the SDK
    /// does not retry it (a retry after a lost response would count twice);
    /// a refusal that certainly did not apply (throttling) is retried here.
    async fn increment(
        &self,
        table: &str,
        id_attr: &str,
        id: &str,
        counter: &str,
        at: Timestamp,
    ) -> Result<(), Increment> {
        let no_retries = aws_sdk_dynamodb::config::Builder::default()
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled());
        let mut attempt = 0u32;
        loop {
            let sent = self
                .client
                .update_item()
                .table_name(table)
                .key(id_attr, s(id))
                .update_expression(format!("ADD {counter} :one SET lastUsedAt = :at"))
                .condition_expression(format!("attribute_exists({id_attr})"))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":at", n(at.millis()))
                .customize()
                .config_override(no_retries.clone())
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            // Refused by the service with a 4xx (throttling, a failed
            // condition): nothing was written. A 5xx, a timeout or a lost
            // connection may have come after the write.
            let refused_by_service =
                err.as_service_error().is_some_and(|e| e.meta().code() != Some("InternalServerError"))
                    && err.raw_response().is_some_and(|r| r.status().is_client_error());
            let certainly_not_applied = matches!(err, SdkError::ConstructionFailure(_)) || refused_by_service;
            let classified = match classify(err) {
                StoreError::Conflict(_) => StoreError::NotFound,
                e => e,
            };
            if !certainly_not_applied {
                return Err(Increment::Unknown(classified));
            }
            attempt += 1;
            match classified {
                StoreError::Unavailable(_) if attempt < 3 => {
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
                }
                e => return Err(Increment::NotApplied(e)),
            }
        }
    }

    /// Takes one off a counter (retried by the SDK: a double decrement errs
    /// low, which is the safe side).
    async fn decrement(&self, table: &str, id_attr: &str, id: &str, counter: &str) -> Result<(), StoreError> {
        let mut attempt = 0u32;
        loop {
            let out = self
                .client
                .update_item()
                .table_name(table)
                .key(id_attr, s(id))
                .update_expression(format!("ADD {counter} :minus"))
                .condition_expression(format!("attribute_exists({id_attr})"))
                .expression_attribute_values(":minus", n(-1))
                .send()
                .await;
            match out.map_err(classify) {
                Ok(_) | Err(StoreError::Conflict(_)) => return Ok(()),
                // Persist a little longer than the SDK would: a count left
                // standing for a failed read would be one too many.
                Err(StoreError::Unavailable(_)) if attempt < 4 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether `table` holds an item under `id` whose `attr` is `value`
    /// (consistent read): to recognise one's own write after a retry.
    async fn holds(&self, table: &str, id_attr: &str, id: &str, attr: &str, value: &[u8]) -> Result<bool, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(table)
            .key(id_attr, s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(got.item.as_ref().and_then(|i| i.get(attr)).and_then(|v| v.as_b().ok()).is_some_and(|b| b.as_ref() == value))
    }

    /// Deletes one purge shard's due tokens: index queries, each followed by
    /// batch deletes of what it found.
    async fn purge_shard(&self, shard: u8, now: Timestamp) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        let mut start = None;
        loop {
            let resp = self
                .client
                .query()
                .table_name(&self.tables.tokens)
                .index_name(PURGE_INDEX)
                .key_condition_expression("purgeShard = :s AND purgeAt <= :now")
                .expression_attribute_values(":s", s(shard.to_string()))
                .expression_attribute_values(":now", n(now.seconds()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            let ids: Vec<String> =
                resp.items().iter().filter_map(|i| i.get("tokenId").and_then(|v| v.as_s().ok()).cloned()).collect();
            report.items_read += ids.len();
            for chunk in ids.chunks(25) {
                let mut writes: Vec<WriteRequest> = Vec::with_capacity(chunk.len());
                for id in chunk {
                    let del = build(DeleteRequest::builder().key("tokenId", s(id)).build())?;
                    writes.push(WriteRequest::builder().delete_request(del).build());
                }
                let mut pending = HashMap::from([(self.tables.tokens.clone(), writes)]);
                for attempt in 0..6u32 {
                    let out = self
                        .client
                        .batch_write_item()
                        .set_request_items(Some(pending))
                        .send()
                        .await
                        .map_err(classify)?;
                    match out.unprocessed_items.filter(|u| u.values().any(|v| !v.is_empty())) {
                        None => break,
                        Some(left) if attempt < 5 => {
                            pending = left;
                            tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                        }
                        Some(_) => return Err(StoreError::Unavailable("BatchWriteItem kept throttling".into())),
                    }
                }
                report.deleted += chunk.len();
            }
            start = resp.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(report)
    }

    /// Consistent batch read of whole items by primary key, retrying
    /// unprocessed keys. Answers items per table.
    async fn batch_get(&self, mut want: HashMap<String, Vec<Item>>) -> Result<HashMap<String, Vec<Item>>, StoreError> {
        let mut out: HashMap<String, Vec<Item>> = HashMap::new();
        let mut attempt = 0u32;
        while want.values().any(|v| !v.is_empty()) {
            // BatchGetItem takes at most 100 keys a call.
            let mut budget = 100usize;
            let mut request = HashMap::new();
            for (table, keys) in want.iter_mut() {
                if budget == 0 || keys.is_empty() {
                    continue;
                }
                let take: Vec<Item> = keys.drain(..keys.len().min(budget)).collect();
                budget -= take.len();
                let ka = build(KeysAndAttributes::builder().set_keys(Some(take)).consistent_read(true).build())?;
                request.insert(table.clone(), ka);
            }
            let resp = self.client.batch_get_item().set_request_items(Some(request)).send().await.map_err(classify)?;
            for (table, items) in resp.responses.unwrap_or_default() {
                out.entry(table).or_default().extend(items);
            }
            if let Some(unprocessed) = resp.unprocessed_keys.filter(|u| !u.is_empty()) {
                attempt += 1;
                if attempt > 5 {
                    return Err(StoreError::Unavailable("BatchGetItem kept returning unprocessed keys".into()));
                }
                for (table, ka) in unprocessed {
                    want.entry(table).or_default().extend(ka.keys);
                }
                tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
            }
        }
        Ok(out)
    }

    /// The ids on one page of a tenant index, then their items, consistently.
    async fn tenant_page(
        &self,
        table: &str,
        id_attr: &str,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let start = decode_cursor(tenant, cursor)?;
        let resp = self
            .client
            .query()
            .table_name(table)
            .index_name(TENANT_INDEX)
            .key_condition_expression("tenantId = :t")
            .expression_attribute_values(":t", s(tenant.as_str()))
            .limit(limit.clamp(1, 100) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let ids: Vec<String> =
            resp.items().iter().filter_map(|i| i.get(id_attr).and_then(|v| v.as_s().ok()).cloned()).collect();
        let next = resp.last_evaluated_key().and_then(encode_cursor);
        if ids.is_empty() {
            return Ok((Vec::new(), next));
        }
        let keys = ids.iter().map(|id| Item::from([(id_attr.to_owned(), s(id))])).collect();
        let mut got = self.batch_get(HashMap::from([(table.to_owned(), keys)])).await?;
        let mut by_id: HashMap<String, Item> = got
            .remove(table)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.get(id_attr).and_then(|v| v.as_s().ok()).cloned().map(|id| (id, i)))
            .collect();
        // Keep the index's order; an item deleted meanwhile is skipped.
        Ok((ids.iter().filter_map(|id| by_id.remove(id)).collect(), next))
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn fetch(&self, want: &Fetch) -> Result<Fetched, StoreError> {
        let mut req: HashMap<String, Vec<Item>> = HashMap::new();
        let mut dedup = |table: &str, attr: &str, ids: Vec<&str>| {
            let mut seen = std::collections::HashSet::new();
            let keys: Vec<Item> = ids
                .into_iter()
                .filter(|id| seen.insert(*id))
                .map(|id| Item::from([(attr.to_owned(), s(id))]))
                .collect();
            if !keys.is_empty() {
                req.insert(table.to_owned(), keys);
            }
        };
        dedup(&self.tables.tokens, "tokenId", want.tokens.iter().map(TokenId::as_str).collect());
        dedup(&self.tables.keys, "keyId", want.keys.iter().map(KeyId::as_str).collect());
        dedup(&self.tables.tenants, "tenantId", want.tenant.iter().map(TenantId::as_str).collect());
        let mut got = self.batch_get(req).await?;
        let mut out = Fetched::default();
        for item in got.remove(&self.tables.tokens).unwrap_or_default() {
            let t = token_from(&item)?;
            out.tokens.insert(t.token_id.clone(), t);
        }
        for item in got.remove(&self.tables.keys).unwrap_or_default() {
            let k = key_from(&item)?;
            out.keys.insert(k.key_id.clone(), k);
        }
        if let Some(item) = got.remove(&self.tables.tenants).unwrap_or_default().first() {
            out.tenant = Some(tenant_from(item)?);
        }
        Ok(out)
    }

    async fn create_tenant(&self, tenant: &TenantRecord, root: &TokenRecord) -> Result<(), StoreError> {
        let items = vec![
            self.put(&self.tables.tenants, tenant_item(tenant), Some("attribute_not_exists(tenantId)"))?,
            self.put(&self.tables.tokens, token_item(root), Some("attribute_not_exists(tokenId)"))?,
        ];
        self.transact_or(items, |_| StoreError::Conflict("tenant exists")).await
    }

    async fn update_modes(
        &self,
        tenant: &TenantId,
        changes: &[(Environment, Mode)],
        audit: &AuditEvent,
    ) -> Result<TenantModes, StoreError> {
        if changes.is_empty() {
            let got = self.fetch(&Fetch { tenant: Some(tenant.clone()), ..Fetch::default() }).await?;
            return Ok(got.tenant.map(|t| t.modes).unwrap_or_default());
        }
        let sets: Vec<String> = changes.iter().map(|(e, _)| format!("#{0} = :{0}", e.as_str())).collect();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.tenants)
            .key("tenantId", s(tenant.as_str()))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression("attribute_exists(tenantId)")
            .return_values(ReturnValue::AllNew);
        for (e, m) in changes {
            update = update
                .expression_attribute_names(format!("#{}", e.as_str()), e.as_str())
                .expression_attribute_values(format!(":{}", e.as_str()), s(m.as_str()));
        }
        let (updated, recorded) = tokio::join!(update.send(), self.append_audit(audit));
        let updated = updated.map_err(|e| match classify(e) {
            StoreError::Conflict(_) => StoreError::NotFound,
            e => e,
        })?;
        recorded?;
        modes_from(&updated.attributes.unwrap_or_default())
    }

    async fn create_key(&self, key: &KeyRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let items = vec![
            self.put(&self.tables.keys, key_item(key), Some("attribute_not_exists(keyId)"))?,
            self.audit_put(audit)?,
        ];
        match self.transact_or(items, |_| StoreError::Conflict("key exists")).await {
            // A retry of our own write that had already landed (the response
            // was lost): the item holds our ciphertext.
            Err(StoreError::Conflict(_))
                if self
                    .holds(&self.tables.keys, "keyId", key.key_id.as_str(), "ciphertext", &key.envelope.ciphertext)
                    .await? =>
            {
                Ok(())
            }
            other => other,
        }
    }

    async fn update_key(
        &self,
        tenant: &TenantId,
        key: &KeyId,
        change: &KeyChange,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut u = Update::builder()
            .table_name(&self.tables.keys)
            .key("keyId", s(key.as_str()))
            .condition_expression("tenantId = :tenant")
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .expression_attribute_values(":updatedAt", n(at.millis()));
        u = match change {
            KeyChange::Value { envelope, preview } => u
                .update_expression(
                    "SET ciphertext = :c, nonce = :n, wrappedKey = :w, preview = :p, updatedAt = :updatedAt",
                )
                .expression_attribute_values(":c", b(&envelope.ciphertext))
                .expression_attribute_values(":n", b(&envelope.nonce))
                .expression_attribute_values(":w", b(&envelope.wrapped_key))
                .expression_attribute_values(":p", s(preview)),
            KeyChange::Meta { name, mode_overrides } => u
                .update_expression("SET #name = :name, modeOverrides = :mo, updatedAt = :updatedAt")
                .expression_attribute_names("#name", "name")
                .expression_attribute_values(":name", s(name))
                .expression_attribute_values(":mo", overrides_value(mode_overrides)),
        };
        let items = vec![TransactWriteItem::builder().update(build(u.build())?).build(), self.audit_put(audit)?];
        self.transact_or(items, |_| StoreError::NotFound).await
    }

    async fn delete_key(&self, tenant: &TenantId, key: &KeyId, audit: &AuditEvent) -> Result<(), StoreError> {
        let delete = build(
            Delete::builder()
                .table_name(&self.tables.keys)
                .key("keyId", s(key.as_str()))
                .condition_expression("tenantId = :tenant")
                .expression_attribute_values(":tenant", s(tenant.as_str()))
                .build(),
        )?;
        let items = vec![TransactWriteItem::builder().delete(delete).build(), self.audit_put(audit)?];
        match self.transact_or(items, |_| StoreError::NotFound).await {
            // Gone already: deleted by a retry of this very call whose first
            // response was lost, or by a concurrent delete. Either way it is gone.
            Err(StoreError::NotFound) => {
                let got = self.fetch(&Fetch { keys: vec![key.clone()], ..Fetch::default() }).await?;
                if got.keys.contains_key(key) {
                    Err(StoreError::NotFound)
                } else {
                    Ok(())
                }
            }
            other => other,
        }
    }

    async fn record_read(
        &self,
        key: &KeyId,
        token: &TokenId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (k, t, a) = tokio::join!(
            self.increment(&self.tables.keys, "keyId", key.as_str(), "retrievals", at),
            self.increment(&self.tables.tokens, "tokenId", token.as_str(), "uses", at),
            self.append_audit(audit)
        );
        if let (Ok(()), Ok(()), Ok(())) = (&k, &t, &a) {
            return Ok(());
        }
        // Take back whatever may have been counted: counters may come out
        // low after a fault, never high.
        let maybe_counted = |r: &Result<(), Increment>| !matches!(r, Err(Increment::NotApplied(_)));
        let (undo_key, undo_token) = (maybe_counted(&k), maybe_counted(&t));
        let (uk, ut) = tokio::join!(
            async {
                if undo_key {
                    self.decrement(&self.tables.keys, "keyId", key.as_str(), "retrievals").await
                } else {
                    Ok(())
                }
            },
            async {
                if undo_token {
                    self.decrement(&self.tables.tokens, "tokenId", token.as_str(), "uses").await
                } else {
                    Ok(())
                }
            },
        );
        if let Err(e) = uk.and(ut) {
            tracing::warn!(error = %e, "could not take back the counters of a failed read");
        }
        k.map_err(Increment::into_store)?;
        t.map_err(Increment::into_store)?;
        a
    }

    async fn record_expected_read(
        &self,
        expect: &ExpectedRead,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let tenant = s(expect.tenant_id.as_str());
        let token = Update::builder()
            .table_name(&self.tables.tokens)
            .key("tokenId", s(expect.token_id.as_str()))
            .update_expression("ADD uses :one SET lastUsedAt = :at")
            .condition_expression(
                "verifier = :v AND tenantId = :tenant AND attribute_not_exists(revokedAt) AND expiresAt > :at",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":at", n(at.millis()))
            .expression_attribute_values(":v", b(&expect.verifier))
            .expression_attribute_values(":tenant", tenant.clone());
        let mut key_condition = String::from("tenantId = :tenant AND #name = :name AND llmType = :llm");
        let mut key = Update::builder()
            .table_name(&self.tables.keys)
            .key("keyId", s(expect.key_id.as_str()))
            .update_expression("ADD retrievals :one SET lastUsedAt = :at")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":at", n(at.millis()))
            .expression_attribute_values(":tenant", tenant.clone())
            .expression_attribute_values(":name", s(&expect.key_name))
            .expression_attribute_values(":llm", s(&expect.llm_type));
        if let Some(e) = &expect.envelope {
            key_condition.push_str(" AND ciphertext = :c AND nonce = :nonce AND wrappedKey = :w");
            key = key
                .expression_attribute_values(":c", b(&e.ciphertext))
                .expression_attribute_values(":nonce", b(&e.nonce))
                .expression_attribute_values(":w", b(&e.wrapped_key));
        }
        let env = expect.environment.as_str();
        let mode = s(expect.mode.as_str());
        let mut tenant_check = None;
        match expect.source {
            Source::Guardrail => {}
            Source::KeyOverride => {
                key_condition.push_str(" AND modeOverrides.#env = :mode");
                key = key.expression_attribute_names("#env", env).expression_attribute_values(":mode", mode);
            }
            Source::TenantSetting => {
                key_condition.push_str(" AND attribute_not_exists(modeOverrides.#env)");
                key = key.expression_attribute_names("#env", env);
                // A tenant item without the setting serves the default.
                let condition = if TenantModes::default().get(expect.environment) == expect.mode {
                    "#env = :mode OR attribute_not_exists(#env)"
                } else {
                    "#env = :mode"
                };
                let check = ConditionCheck::builder()
                    .table_name(&self.tables.tenants)
                    .key("tenantId", tenant)
                    .condition_expression(condition)
                    .expression_attribute_names("#env", env)
                    .expression_attribute_values(":mode", mode);
                tenant_check = Some(TransactWriteItem::builder().condition_check(build(check.build())?).build());
            }
        }
        let key = key.condition_expression(key_condition);
        let event = audit_item(audit)?;
        let event_key = event.get("eventKey").cloned().ok_or_else(|| bad("eventKey"))?;
        let mut items = vec![
            TransactWriteItem::builder().update(build(token.build())?).build(),
            TransactWriteItem::builder().update(build(key.build())?).build(),
        ];
        items.extend(tenant_check);
        // The event's condition makes the transaction idempotent: a retry of
        // an attempt that landed finds its own event.
        items.push(self.put(&self.tables.audit, event, Some("attribute_not_exists(eventKey)"))?);
        let event_at = items.len() - 1;
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(crate::ids::random_base62(32))
            .send()
            .await;
        let err = match sent {
            Ok(_) => return Ok(true),
            Err(e) => e,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error() {
            let reasons = e.cancellation_reasons();
            let event_exists = reasons.get(event_at).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
            // Otherwise a condition failed, or a concurrent write or
            // throttling cancelled it: either way nothing was written.
            return Ok(event_exists);
        }
        match classify(err) {
            // No answer after the SDK's retries: the write may have landed,
            // and then its event is there.
            StoreError::Unavailable(cause) => {
                let got = self
                    .client
                    .get_item()
                    .table_name(&self.tables.audit)
                    .key("tenantId", s(expect.tenant_id.as_str()))
                    .key("eventKey", event_key)
                    .consistent_read(true)
                    .projection_expression("eventKey")
                    .send()
                    .await
                    .map_err(classify)?;
                if got.item.is_some() {
                    Ok(true)
                } else {
                    Err(StoreError::Unavailable(cause))
                }
            }
            e => Err(e),
        }
    }

    async fn unrecord_read(&self, key: &KeyId, token: &TokenId) -> Result<(), StoreError> {
        let (k, t) = tokio::join!(
            self.decrement(&self.tables.keys, "keyId", key.as_str(), "retrievals"),
            self.decrement(&self.tables.tokens, "tokenId", token.as_str(), "uses")
        );
        k.and(t)
    }

    async fn create_token(&self, token: &TokenRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut items =
            vec![self.put(&self.tables.tokens, token_item(token), Some("attribute_not_exists(tokenId)"))?];
        if let Some(parent) = &token.issued_by {
            let u = Update::builder()
                .table_name(&self.tables.tokens)
                .key("tokenId", s(parent.as_str()))
                .update_expression("ADD children :child")
                .condition_expression("attribute_exists(tokenId) AND attribute_not_exists(revokedAt)")
                .expression_attribute_values(":child", AttributeValue::Ss(vec![token.token_id.to_string()]));
            items.push(TransactWriteItem::builder().update(build(u.build())?).build());
        }
        items.push(self.audit_put(audit)?);
        let outcome = self
            .transact_or(items, |i| {
                if i == 0 {
                    StoreError::Conflict("token exists")
                } else {
                    StoreError::Conflict("issuer was revoked")
                }
            })
            .await;
        match outcome {
            // A retry of our own write that had already landed.
            Err(StoreError::Conflict("token exists"))
                if self
                    .holds(&self.tables.tokens, "tokenId", token.token_id.as_str(), "verifier", &token.verifier)
                    .await? =>
            {
                Ok(())
            }
            other => other,
        }
    }

    async fn revoke_token(
        &self,
        tenant: &TenantId,
        token: &TokenId,
        at: Timestamp,
        purge_at: Timestamp,
    ) -> Result<Vec<TokenId>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.tokens)
            .key("tokenId", s(token.as_str()))
            .update_expression("SET revokedAt = if_not_exists(revokedAt, :at), purgeAt = :purge, #ttl = :ttl")
            .condition_expression("tenantId = :tenant")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":at", n(at.millis()))
            .expression_attribute_values(":purge", n(purge_at.seconds()))
            .expression_attribute_values(":ttl", n(purge_at.seconds() + TTL_MARGIN_SECONDS))
            .expression_attribute_values(":tenant", s(tenant.as_str()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| match classify(e) {
                StoreError::Conflict(_) => StoreError::NotFound,
                e => e,
            })?;
        let children = match out.attributes.as_ref().and_then(|a| a.get("children")) {
            Some(AttributeValue::Ss(ids)) => ids.iter().cloned().map(TokenId::from_stored).collect(),
            _ => Vec::new(),
        };
        Ok(children)
    }

    async fn list_keys(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<KeyRecord>, StoreError> {
        let (items, next) = self.tenant_page(&self.tables.keys, "keyId", tenant, limit, cursor).await?;
        let items = items.iter().map(key_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items: items.into_iter().filter(|k| &k.tenant_id == tenant).collect(), next })
    }

    async fn list_tokens(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<TokenRecord>, StoreError> {
        let (items, next) = self.tenant_page(&self.tables.tokens, "tokenId", tenant, limit, cursor).await?;
        let items = items.iter().map(token_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items: items.into_iter().filter(|t| &t.tenant_id == tenant).collect(), next })
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.audit)
            .set_item(Some(audit_item(event)?))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn list_audit(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let start = decode_cursor(tenant, cursor)?;
        let resp = self
            .client
            .query()
            .table_name(&self.tables.audit)
            .key_condition_expression("tenantId = :t")
            .expression_attribute_values(":t", s(tenant.as_str()))
            .scan_index_forward(false)
            .limit(limit.clamp(1, 100) as i32)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let items = resp.items().iter().map(audit_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next: resp.last_evaluated_key().and_then(encode_cursor) })
    }

    async fn purge_tokens(&self, now: Timestamp) -> Result<PurgeReport, StoreError> {
        // The shards are independent: all at once, so that cleanup takes the
        // round trips of one shard, not of eight.
        let shards = (0..PURGE_SHARDS).map(|shard| self.purge_shard(shard, now));
        let mut report = PurgeReport::default();
        for r in futures::future::try_join_all(shards).await? {
            report.items_read += r.items_read;
            report.deleted += r.deleted;
        }
        Ok(report)
    }
}

// ---------------------------------------------------------------- tables

fn attr_type(t: schema::AttrType) -> ScalarAttributeType {
    match t {
        schema::AttrType::S => ScalarAttributeType::S,
        schema::AttrType::N => ScalarAttributeType::N,
        schema::AttrType::B => ScalarAttributeType::B,
    }
}

fn key_schema(hash: schema::Attr, range: Option<schema::Attr>) -> Result<Vec<KeySchemaElement>, StoreError> {
    let mut out = vec![build(KeySchemaElement::builder().attribute_name(hash.name).key_type(KeyType::Hash).build())?];
    if let Some(r) = range {
        out.push(build(KeySchemaElement::builder().attribute_name(r.name).key_type(KeyType::Range).build())?);
    }
    Ok(out)
}

/// Creates the four tables (on-demand, with their indexes and TTL) from
/// [`schema`]. For tests and `ibyok dev --aws`; production tables come from
/// the template.
pub async fn create_tables(client: &Client, tables: &Tables) -> Result<(), StoreError> {
    for def in schema::ALL {
        let name = match def.suffix {
            "tokens" => &tables.tokens,
            "keys" => &tables.keys,
            "tenants" => &tables.tenants,
            _ => &tables.audit,
        };
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(def.hash, def.range)?));
        for a in def.key_attributes() {
            req = req.attribute_definitions(build(
                AttributeDefinition::builder().attribute_name(a.name).attribute_type(attr_type(a.ty)).build(),
            )?);
        }
        for idx in def.indexes {
            let projection = Projection::builder()
                .projection_type(if idx.keys_only { ProjectionType::KeysOnly } else { ProjectionType::All })
                .build();
            req = req.global_secondary_indexes(build(
                GlobalSecondaryIndex::builder()
                    .index_name(idx.name)
                    .set_key_schema(Some(key_schema(idx.hash, idx.range)?))
                    .projection(projection)
                    .build(),
            )?);
        }
        match req.send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().and_then(|x| x.code()) == Some("ResourceInUseException") => continue,
            Err(e) => return Err(classify(e)),
        }
        if let Some(ttl) = def.ttl {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(build(
                    TimeToLiveSpecification::builder().attribute_name(ttl).enabled(true).build(),
                )?)
                .send()
                .await
                .map_err(classify)?;
        }
    }
    Ok(())
}
