//! Expiry notices: the port the scheduled work sends them through, its SNS
//! adapter (feature `sns`: the cleanup function) and a log adapter (`ibyok
//! dev`). A notice names the token (id and name), its tenant and its
//! expiry; never the token itself, which no store holds.

use crate::fault::Fault;
use crate::store::ExpiryNotice;
use async_trait::async_trait;

/// The notice's subject line (SNS subjects are ASCII, at most 100 characters).
pub const SUBJECT: &str = "IBYOK: a token expires within 7 days";

/// The notice's body: JSON, one object.
pub fn message(n: &ExpiryNotice) -> String {
    serde_json::json!({
        "type": "ibyok.token.expiring",
        "tokenId": n.token_id,
        "name": n.name,
        "tenantId": n.tenant_id,
        "expiresAt": n.expires_at,
    })
    .to_string()
}

#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends one notice; an `Err` leaves it to the next run.
    async fn expiry(&self, notice: &ExpiryNotice) -> Result<(), Fault>;
}

/// `ibyok dev`: the notice as a log line (and on stderr).
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn expiry(&self, n: &ExpiryNotice) -> Result<(), Fault> {
        tracing::warn!(
            token_id = %n.token_id,
            name = %n.name,
            tenant_id = %n.tenant_id,
            expires_at = %n.expires_at.rfc3339(),
            "token expires within 7 days"
        );
        eprintln!("notice: {}", message(n));
        Ok(())
    }
}

/// The cleanup function: one `Publish` a notice to the stack's topic.
#[cfg(feature = "sns")]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

#[cfg(feature = "sns")]
impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self { client, topic_arn: topic_arn.into() }
    }

    /// From `IBYOK_NOTICE_TOPIC_ARN`; `None` when it is unset or empty.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Option<Self> {
        let arn = std::env::var("IBYOK_NOTICE_TOPIC_ARN").ok().filter(|a| !a.trim().is_empty())?;
        Some(Self::new(aws_sdk_sns::Client::new(sdk), arn.trim()))
    }
}

#[cfg(feature = "sns")]
#[async_trait]
impl Notifier for SnsNotifier {
    async fn expiry(&self, n: &ExpiryNotice) -> Result<(), Fault> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(SUBJECT)
            .message(message(n))
            .send()
            .await
            .map_err(|e| Fault::from_sdk("SNS", &["Throttled", "ThrottlingException"], e))?;
        Ok(())
    }
}
