//! The one place the AWS clients are built: for the Lambda functions, the
//! operator's bootstrap and `ibyok dev --aws`.

use crate::api::App;
use crate::config::{Config, Tables};
use crate::kms::aws::AwsKms;
use crate::store::dynamo::DynamoStore;
use std::sync::Arc;
use std::time::Duration;

/// Timeouts and retries for Lambda, whose own timeout is short: a call that
/// has not connected in 1 s or answered in 2 s is retried, at most 3
/// attempts in all, within 5 s; after that the request answers 503.
pub fn sdk_timeouts() -> (aws_config::timeout::TimeoutConfig, aws_config::retry::RetryConfig) {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let retries = aws_config::retry::RetryConfig::standard().with_max_attempts(3);
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
/// names the KMS key.
pub async fn app() -> Result<App, Box<dyn std::error::Error + Send + Sync>> {
    let config = Config::from_env()?;
    let sdk = sdk_config().await;
    let key_id = std::env::var("IBYOK_KMS_KEY_ID").map_err(|_| "IBYOK_KMS_KEY_ID is not set")?;
    let kms = AwsKms::new(aws_sdk_kms::Client::new(&sdk), key_id);
    Ok(App::new(Arc::new(dynamo_store(&sdk)), Arc::new(kms), config))
}
