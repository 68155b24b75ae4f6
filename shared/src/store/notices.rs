//! Expiry notices: a token's notice is claimed once, seven days before it
//! expires, and sent by the cleanup run.

use super::{StoreError, TokenRecord};
use crate::clock::Timestamp;
use crate::ids::{TenantId, TokenId};
use async_trait::async_trait;
use serde::Serialize;

/// Expiry notices go out this long before a token expires.
pub const EXPIRY_NOTICE_SECONDS: i64 = 7 * 86_400;

impl TokenRecord {
    /// When this token's expiry notice is due (epoch seconds):
    /// [`EXPIRY_NOTICE_SECONDS`] before its expiry, for a token issued at
    /// least that long before it expires; `None` for a shorter-lived token
    /// (its issuer chose a short life; nobody needs telling).
    pub fn notice_second(&self) -> Option<i64> {
        let at = self.grant.expires_at.plus_seconds(-EXPIRY_NOTICE_SECONDS);
        (at >= self.created_at).then(|| at.seconds())
    }
}

/// A token whose expiry is near, for its notice: never the token itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryNotice {
    pub token_id: TokenId,
    pub name: String,
    pub tenant_id: TenantId,
    pub expires_at: Timestamp,
}

/// Expiry notices, claimed once each.
#[async_trait]
pub trait NoticeStore: Send + Sync {
    /// Claims the expiry notices due at `now` ([`TokenRecord::notice_second`]),
    /// reading only those: each token's notice is claimed once (a concurrent
    /// run's claim of the same token fails), and the claimed tokens that are
    /// still live are answered for the caller to send. A revoked or expired
    /// token's notice is dropped unsent.
    async fn claim_expiry_notices(&self, now: Timestamp) -> Result<Vec<ExpiryNotice>, StoreError>;

    /// Puts back a claimed notice that could not be sent, for the next run.
    async fn release_expiry_notice(&self, token: &TokenId, notice_second: i64) -> Result<(), StoreError>;
}
