//! Notices to a tenant: a token's expiry (sent by the scheduled work) and
//! tokens found leaked and revoked (sent by `POST /github/secret-scanning`);
//! the port they go through, its SNS adapter (feature `sns`: the cleanup
//! and revoke functions, one topic for both) and a log adapter (`ibyok
//! dev`). A notice names tokens by id and name, with their tenant; never a
//! token itself, which no store holds.

use crate::clock::Timestamp;
use crate::fault::Fault;
use crate::ids::{TenantId, TokenId};
use crate::store::ExpiryNotice;
use async_trait::async_trait;
use serde::Serialize;

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

/// The subject line of a leak notice.
pub const LEAK_SUBJECT: &str = "IBYOK: a token was found in public and revoked";

/// Tokens of one tenant that a secret scanning service found in public,
/// revoked with their descendants by one report (at most
/// [`MAX_LEAKED_PER_NOTICE`] a notice).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakNotice {
    pub tenant_id: TenantId,
    pub reported_at: Timestamp,
    pub tokens: Vec<LeakedToken>,
}

/// Tokens a leak notice names at most (an SNS message holds 256 KB).
pub const MAX_LEAKED_PER_NOTICE: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeakedToken {
    pub token_id: TokenId,
    pub name: String,
    /// Where it was found, as reported (cut to 1,000 characters).
    pub url: String,
    /// What kind of place (`content`, `commit`, `issue`, …), as reported.
    pub source: String,
}

/// A leak notice's body: JSON, one object.
pub fn leak_message(n: &LeakNotice) -> String {
    serde_json::json!({
        "type": "ibyok.token.leaked",
        "tenantId": n.tenant_id,
        "reportedAt": n.reported_at,
        "tokens": n.tokens,
    })
    .to_string()
}

#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends one notice; an `Err` leaves it to the next run.
    async fn expiry(&self, notice: &ExpiryNotice) -> Result<(), Fault>;

    /// Sends one leak notice (the tokens are revoked already; an `Err` is
    /// logged, and the `token.leaked` events hold the same).
    async fn leaked(&self, notice: &LeakNotice) -> Result<(), Fault>;
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

    async fn leaked(&self, n: &LeakNotice) -> Result<(), Fault> {
        tracing::warn!(tenant_id = %n.tenant_id, tokens = n.tokens.len(), "tokens found leaked were revoked");
        eprintln!("notice: {}", leak_message(n));
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

    async fn leaked(&self, n: &LeakNotice) -> Result<(), Fault> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(LEAK_SUBJECT)
            .message(leak_message(n))
            .send()
            .await
            .map_err(|e| Fault::from_sdk("SNS", &["Throttled", "ThrottlingException"], e))?;
        Ok(())
    }
}
