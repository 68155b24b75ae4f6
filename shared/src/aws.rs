//! The one place the AWS clients are built: for the Lambda functions, the
//! operator's bootstrap and `ibyok dev --aws`.

use crate::api::App;
use crate::config::{Config, Tables};
use crate::kms::aws::AwsKms;
use crate::kms::{Kms, Unconfigured};
use crate::store::dynamo::DynamoStore;
use std::sync::Arc;
use std::time::Duration;

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

/// The service with its AWS adapters, from the environment. `IBYOK_KMS_KEY_ID`
/// names the KMS key; the functions that make no KMS call are not given it
/// and get [`Unconfigured`] instead.
pub async fn app() -> Result<App, Box<dyn std::error::Error + Send + Sync>> {
    let config = Config::from_env()?;
    let sdk = sdk_config().await;
    let kms: Arc<dyn Kms> = match std::env::var("IBYOK_KMS_KEY_ID") {
        Ok(key_id) if !key_id.is_empty() => Arc::new(AwsKms::new(aws_sdk_kms::Client::new(&sdk), key_id)),
        _ => Arc::new(Unconfigured),
    };
    Ok(App::new(Arc::new(dynamo_store(&sdk)), kms, config))
}
