//! The integration tests' harness: a fresh set of tables and a KMS key on the
//! local AWS-protocol server (moto) that `scripts/test` started, the service
//! wired to the real AWS adapters, a tenant with its root token, and a small
//! request builder.
//!
//! What the tests cover, and how to run them (`docs/testing.md`):
//!
#![doc = include_str!("../../docs/testing.md")]

pub mod delay;
pub mod faults;
pub mod issuer;
pub mod scanner;
pub mod sts;

use ibyok::api::{ApiRequest, ApiResponse, App};
use ibyok::bootstrap;
use ibyok::clock::{Clock, ManualClock, SystemClock};
use ibyok::config::{Config, Tables};
use ibyok::kms::aws::AwsKms;
use ibyok::store::dynamo::{create_tables, DynamoStore};
use ibyok::store::Store;
use serde_json::Value;
use std::sync::Arc;

/// The endpoint of the local AWS-protocol server.
pub fn endpoint() -> String {
    std::env::var("IBYOK_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("IBYOK_TEST_AWS_ENDPOINT is not set: run the tests with scripts/test, which starts moto")
    })
}

/// The capacity model's ledger (`scripts/capacity.py`, when moto runs with
/// `--capacity`): `GET` answers the units since the last `POST`, which
/// empties it. `None` when moto runs without the model.
pub fn capacity_ledger(method: &str) -> Option<Value> {
    use std::io::{Read, Write};
    let host = endpoint().trim_start_matches("http://").to_owned();
    let mut s = std::net::TcpStream::connect(&host).ok()?;
    write!(s, "{method} /__capacity HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    if !head.contains(" 200 ") {
        return None;
    }
    serde_json::from_str(body).ok()
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_at(&endpoint(), None).await
}

/// The SDK configuration for `endpoint`, with the given timeouts (default:
/// generous ones for moto) and the service's own retry policy.
pub async fn sdk_config_at(
    endpoint: &str,
    timeouts: Option<aws_config::timeout::TimeoutConfig>,
) -> aws_config::SdkConfig {
    // moto serves one request at a time per thread and is far slower than
    // AWS under load: the tests give it more time than Lambda would.
    let timeouts = timeouts.unwrap_or_else(|| {
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .operation_attempt_timeout(std::time::Duration::from_secs(30))
            .operation_timeout(std::time::Duration::from_secs(60))
            .build()
    });
    let (_, retries) = ibyok::aws::sdk_timeouts();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests"))
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await
}

/// A DynamoDB store on fresh tables of the local AWS-protocol server.
pub async fn fresh_store() -> Arc<DynamoStore> {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let tables = Tables::with_prefix(&format!("t{}-", ibyok::ids::random_base62(10)));
    create_tables(&dynamo, &tables).await.expect("create tables on moto");
    Arc::new(DynamoStore::new(dynamo, tables))
}

/// A fresh DynamoDB store for the store contract suite, its counters
/// settled by draining the audit stream.
pub async fn fresh_subject() -> ibyok::store::contract::Subject {
    let store = fresh_store().await;
    let sdk = sdk_config().await;
    let usage = Arc::new(ibyok::store::dynamo::consumer::UsageStream::new(&sdk, &store.tables().audit, store.clone()));
    let settle: ibyok::store::contract::Settle = Arc::new(move || {
        let usage = usage.clone();
        Box::pin(async move {
            usage.drain().await.expect("the audit stream applied");
        })
    });
    ibyok::store::contract::Subject { store, settle: Some(settle) }
}

pub struct Env {
    pub app: App<DynamoStore>,
    /// The usage function's part: the audit stream applied to the counters.
    pub usage: Arc<ibyok::store::dynamo::consumer::UsageStream>,
    pub clock: Arc<ManualClock>,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub kms: aws_sdk_kms::Client,
    pub tables: Tables,
    pub store: Arc<DynamoStore>,
    pub tenant: ibyok::ids::TenantId,
    /// The tenant's root token.
    pub root: String,
    /// The test's KMS key (for [`Env::app_with`]).
    pub kms_key_id: String,
}

pub struct EnvBuilder {
    config: Config,
    through: Option<(String, aws_config::timeout::TimeoutConfig)>,
}

impl Env {
    pub fn builder() -> EnvBuilder {
        EnvBuilder { config: Config::default(), through: None }
    }

    pub async fn new() -> Self {
        Self::builder().build().await
    }

    /// Another tenant on the same tables, with its root token.
    pub async fn other_tenant(&self) -> (ibyok::ids::TenantId, String) {
        let b = bootstrap::create_tenant(self.store.as_ref(), "other", self.clock.now()).await.unwrap();
        (b.tenant.tenant_id, b.token.expose_token().to_owned())
    }

    pub async fn call(&self, req: Req) -> Resp {
        Resp::from(self.app.handle(req.0).await)
    }

    /// A service on the same tables and key with another configuration.
    pub fn app_with(&self, config: Config, kms_key: &str) -> App<DynamoStore> {
        App::new(self.store.clone(), Arc::new(AwsKms::new(self.kms.clone(), kms_key)), config)
            .with_clock(self.clock.clone())
    }
}

impl EnvBuilder {
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The service's adapters talk to `endpoint` (a fault proxy) with these
    /// timeouts; setup and the test's own checks still go straight to moto.
    pub fn through(mut self, endpoint: &str, timeouts: aws_config::timeout::TimeoutConfig) -> Self {
        self.through = Some((endpoint.to_owned(), timeouts));
        self
    }

    pub async fn build(self) -> Env {
        let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
        let sdk = sdk_config().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let kms = aws_sdk_kms::Client::new(&sdk);
        let prefix = format!("t{}-", ibyok::ids::random_base62(10));
        let tables = Tables::with_prefix(&prefix);
        create_tables(&dynamo, &tables).await.expect("create tables on moto");
        let key = kms.create_key().description("ibyok test").send().await.expect("kms create key");
        let key_id = key.key_metadata().expect("key metadata").key_id().to_owned();
        let store = Arc::new(DynamoStore::new(dynamo.clone(), tables.clone()));
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let b = bootstrap::create_tenant(store.as_ref(), "test", clock.now()).await.expect("bootstrap");
        let mut config = self.config;
        // The tests' OpenID issuers and STS listen on loopback.
        config.allow_loopback_http = true;
        let app = match &self.through {
            None => App::new(store.clone(), Arc::new(AwsKms::new(kms.clone(), key_id.clone())), config),
            Some((url, timeouts)) => {
                let sdk = sdk_config_at(url, Some(timeouts.clone())).await;
                let proxied = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), tables.clone());
                let kms = AwsKms::new(aws_sdk_kms::Client::new(&sdk), key_id.clone());
                App::new(Arc::new(proxied), Arc::new(kms), config)
            }
        }
        .with_clock(clock.clone());
        let usage = Arc::new(ibyok::store::dynamo::consumer::UsageStream::new(&sdk, &tables.audit, store.clone()));
        Env {
            app,
            usage,
            clock,
            dynamo,
            kms,
            tables,
            store,
            tenant: b.tenant.tenant_id,
            root: b.token.expose_token().to_owned(),
            kms_key_id: key_id,
        }
    }
}

/// A request under construction.
pub struct Req(pub ApiRequest);

impl Req {
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        Req(ApiRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: ibyok::api::body::parse_query(query),
            request_id: String::new(),
            user_agent: Some("ibyok-tests".into()),
            ..ApiRequest::default()
        })
    }
    pub fn get(p: &str) -> Self {
        Self::new("GET", p)
    }
    pub fn post(p: &str) -> Self {
        Self::new("POST", p)
    }
    pub fn put(p: &str) -> Self {
        Self::new("PUT", p)
    }
    pub fn patch(p: &str) -> Self {
        Self::new("PATCH", p)
    }
    pub fn delete(p: &str) -> Self {
        Self::new("DELETE", p)
    }
    pub fn token(mut self, t: &str) -> Self {
        self.0.authorization = Some(format!("Bearer {t}").into());
        self
    }
    pub fn auth_header(mut self, h: &str) -> Self {
        self.0.authorization = Some(h.to_owned().into());
        self
    }
    pub fn json(mut self, v: Value) -> Self {
        self.0.content_type = Some("application/json".into());
        self.0.body = serde_json::to_vec(&v).unwrap().into();
        self
    }
    pub fn raw_body(mut self, content_type: Option<&str>, body: &[u8]) -> Self {
        self.0.content_type = content_type.map(str::to_owned);
        self.0.body = body.to_vec().into();
        self
    }
    pub fn from_ip(mut self, ip: &str) -> Self {
        self.0.source_ip = Some(ip.parse().unwrap());
        self
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub raw: ApiResponse,
}

impl From<ApiResponse> for Resp {
    fn from(raw: ApiResponse) -> Self {
        let bytes = raw.body.expose();
        let json = raw.header("content-type").is_some_and(|c| c.starts_with("application/json"));
        let body = if bytes.is_empty() || !json { Value::Null } else { serde_json::from_slice(bytes).unwrap() };
        Resp { status: raw.status, body, raw }
    }
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.raw.body.expose()).into_owned()
    }
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        self
    }
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Self {
        let s = self.expect(status);
        assert_eq!(s.code(), code, "body: {}", s.text());
        s
    }
}

/// Convenience flows.
impl Env {
    /// Lets the counters catch up with every read so far (what the usage
    /// function does within seconds in AWS).
    pub async fn settle(&self) {
        self.usage.drain().await.expect("the audit stream applied");
    }

    pub async fn add_key(&self, token: &str, name: &str, llm: &str, value: &str) -> String {
        let r = self
            .call(
                Req::post("/keys").token(token).json(serde_json::json!({"name": name, "llmType": llm, "value": value})),
            )
            .await
            .expect(201);
        r.body["keyId"].as_str().unwrap().to_owned()
    }

    pub async fn issue(&self, token: &str, body: Value) -> (String, String) {
        let r = self.call(Req::post("/tokens").token(token).json(body)).await.expect(201);
        (r.body["tokenId"].as_str().unwrap().to_owned(), r.body["token"].as_str().unwrap().to_owned())
    }

    pub async fn read(&self, token: &str, key: &str, env: &str) -> Resp {
        self.call(Req::get(&format!("/external/keys/{key}/value?env={env}")).token(token)).await
    }

    /// Writes `item` as a key's stored item and as each of its replicas
    /// (tampering with the table reaches every copy a read may take).
    pub async fn put_key_item(&self, item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) {
        use aws_sdk_dynamodb::types::AttributeValue;
        let id = item["keyId"].as_s().unwrap().clone();
        self.dynamo.put_item().table_name(&self.tables.keys).set_item(Some(item.clone())).send().await.unwrap();
        for r in 0..ibyok::store::schema::RECORD_REPLICAS {
            let mut copy = item.clone();
            copy.insert("replicaId".into(), AttributeValue::S(format!("key#{id}#{r}")));
            self.dynamo.put_item().table_name(&self.tables.replicas).set_item(Some(copy)).send().await.unwrap();
        }
    }

    pub fn dyn_store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

/// A token's item as stored, read consistently.
pub async fn raw_token(
    env: &Env,
    id: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    env.dynamo
        .get_item()
        .table_name(&env.tables.tokens)
        .key("tokenId", aws_sdk_dynamodb::types::AttributeValue::S(id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// An item's size as DynamoDB counts it for capacity: each attribute's name
/// plus its value (strings and binaries by length, numbers by about one byte
/// per two digits plus one, sets and lists by their elements plus overhead).
pub fn item_bytes(item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_bytes(v)).sum()
}

fn value_bytes(v: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let number = |n: &str| n.trim_start_matches('-').replace('.', "").len().div_ceil(2) + 1;
    match v {
        A::S(s) => s.len(),
        A::N(n) => number(n),
        A::B(b) => b.as_ref().len(),
        A::Bool(_) | A::Null(_) => 1,
        A::Ss(v) => v.iter().map(String::len).sum(),
        A::Ns(v) => v.iter().map(|n| number(n)).sum(),
        A::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        A::L(l) => 3 + l.iter().map(|x| 1 + value_bytes(x)).sum::<usize>(),
        A::M(m) => 3 + m.iter().map(|(k, x)| 1 + k.len() + value_bytes(x)).sum::<usize>(),
        _ => 0,
    }
}
