//! The one place the AWS clients are built: for the Lambda functions, the
//! operator's bootstrap and `ibyok dev --aws`.

use crate::api::App;
use crate::config::{Config, Tables};
use crate::kms::aws::AwsKms;
use crate::kms::{Kms, Unconfigured};
use crate::store::dynamo::DynamoStore;
use std::sync::Arc;
use std::time::Duration;

/// A failure to build the clients or read the configuration.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Timeouts and retries for Lambda, whose own timeout is short: a call that
/// has not connected in 1 s or answered in 2 s is retried after a jittered
/// backoff from 50 ms (at most 500 ms), at most 3 attempts in all, within
/// 5 s; after that the request answers 503.
pub fn sdk_timeouts() -> (aws_config::timeout::TimeoutConfig, aws_config::retry::RetryConfig) {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    // The SDK's default first backoff is a second; a vault on its callers'
    // start-up path retries sooner (with full jitter), and gives up sooner.
    let retries = aws_config::retry::RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_millis(500));
    (timeouts, retries)
}

/// Loads the AWS configuration from the environment (`AWS_REGION`,
/// credentials, `AWS_ENDPOINT_URL` for a local server).
pub async fn sdk_config() -> aws_config::SdkConfig {
    let (timeouts, retries) = sdk_timeouts();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await
}

/// The store alone (the cleanup function needs no KMS).
pub fn dynamo_store(sdk: &aws_config::SdkConfig) -> DynamoStore {
    DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), Tables::from_env())
}

/// The service with its AWS adapters, from the environment, for a function
/// whose routes call KMS: `IBYOK_KMS_KEY_ID` must name the key, else the
/// start fails, naming the variable (not the first request, with a 500).
pub async fn app() -> Result<App<DynamoStore>, Error> {
    let config = Config::from_env()?;
    let kms_key = crate::config::kms_key_id(|k| std::env::var(k).ok())?;
    let sdk = sdk_config().await;
    let store = dynamo_store(&sdk);
    warm_up(&store);
    let client = aws_sdk_kms::Client::new(&sdk);
    warm_up_kms(client.clone(), kms_key.clone());
    let kms: Arc<dyn Kms> = Arc::new(AwsKms::new(client, kms_key));
    Ok(App::new(Arc::new(store), kms, config))
}

/// [`app`] for a function whose routes make no KMS call: no KMS client is
/// built, so none is linked into its binary.
pub async fn app_without_kms() -> Result<App<DynamoStore>, Error> {
    let config = Config::from_env()?;
    let sdk = sdk_config().await;
    let store = dynamo_store(&sdk);
    warm_up(&store);
    Ok(App::new(Arc::new(store), Arc::new(Unconfigured), config))
}

/// The audit digests' signing key named by `IBYOK_AUDIT_SIGNING_KEY_ID`
/// (`None` without it): the cleanup function signs with it, the account
/// function publishes its public key.
pub async fn audit_signer() -> Option<Arc<dyn crate::kms::Signer>> {
    let key =
        std::env::var("IBYOK_AUDIT_SIGNING_KEY_ID").ok().map(|k| k.trim().to_owned()).filter(|k| !k.is_empty())?;
    let sdk = sdk_config().await;
    Some(Arc::new(crate::kms::aws::AwsSigner::new(aws_sdk_kms::Client::new(&sdk), key)))
}

/// The SNS notifier of `IBYOK_NOTICE_TOPIC_ARN` (feature `sns`), for the
/// leak notices of the function serving `POST /github/secret-scanning`;
/// `None` (and a warning) when the variable is unset.
#[cfg(feature = "sns")]
pub async fn notifier() -> Option<Arc<dyn crate::notify::Notifier>> {
    let notifier = crate::notify::SnsNotifier::from_env(&sdk_config().await);
    if notifier.is_none() {
        tracing::warn!("IBYOK_NOTICE_TOPIC_ARN is not set: leak notices are not sent");
    }
    notifier.map(|n| Arc::new(n) as Arc<dyn crate::notify::Notifier>)
}

/// Connections a cold read needs at once: one `BatchGetItem`, then three
/// DynamoDB writes beside a KMS call.
const WARM_DYNAMODB_CONNECTIONS: usize = 3;

/// Opens the connections the first request will need while the runtime
/// waits for it, instead of one round trip late: cheap calls, fired and
/// forgotten — a `BatchGetItem` of an id no token has, and `DescribeKey`
/// (no key material, and unlike a failed `Decrypt` no tampering signal in
/// CloudTrail). Their failures are ignored: the request path does not
/// depend on them.
fn warm_up(store: &DynamoStore) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    for _ in 0..WARM_DYNAMODB_CONNECTIONS {
        let (client, table) = (store.client().clone(), store.tables().tokens.clone());
        tokio::spawn(async move {
            let key = std::collections::HashMap::from([(
                "tokenId".to_owned(),
                aws_sdk_dynamodb::types::AttributeValue::S("tok_warmup".into()),
            )]);
            let Ok(keys) = aws_sdk_dynamodb::types::KeysAndAttributes::builder().keys(key).build() else { return };
            let _ = client.batch_get_item().request_items(table, keys).send().await;
        });
    }
}

/// [`warm_up`]'s KMS call, for the functions that have a KMS client.
fn warm_up_kms(client: aws_sdk_kms::Client, key_id: String) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::spawn(async move {
        let _ = client.describe_key().key_id(key_id).send().await;
    });
}

/// Sign-in's client secrets, read from SSM Parameter Store (SecureString,
/// decrypted) once at start: `IBYOK_OIDC_CLIENT_SECRET_PARAMETER` and
/// `IBYOK_GITHUB_CLIENT_SECRET_PARAMETER` name the parameters. A secret is
/// never in the function's environment or the template.
#[cfg(feature = "ssm")]
pub async fn sign_in_secrets(config: &mut crate::signin::SignInConfig) -> Result<(), Error> {
    let wanted = |var: &str| std::env::var(var).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let (oidc, github) = (wanted("IBYOK_OIDC_CLIENT_SECRET_PARAMETER"), wanted("IBYOK_GITHUB_CLIENT_SECRET_PARAMETER"));
    if oidc.is_none() && github.is_none() {
        return Ok(());
    }
    let client = aws_sdk_ssm::Client::new(&sdk_config().await);
    let read = |name: String| {
        let client = client.clone();
        async move {
            let got = client.get_parameter().name(&name).with_decryption(true).send().await.map_err(|e| -> Error {
                format!("sign-in: the SSM parameter {name}: {}", crate::fault::chain(&e)).into()
            })?;
            let value = got.parameter.and_then(|p| p.value).filter(|v| !v.is_empty());
            value
                .map(crate::secret::Redacted::from)
                .ok_or_else(|| -> Error { format!("sign-in: the SSM parameter {name} is empty").into() })
        }
    };
    if let (Some(name), Some(p)) = (oidc, config.oidc.as_mut()) {
        p.client_secret = read(name).await?;
    }
    if let (Some(name), Some(app)) = (github, config.github.as_mut()) {
        app.client_secret = read(name).await?;
    }
    Ok(())
}
