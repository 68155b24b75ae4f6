//! The scheduled work, in one place: the `cleanup` function runs it on its
//! schedule, and `ibyok dev` runs it periodically, so that a long-running
//! development server does not accumulate expired tokens or retired
//! versions either. The audit log's digests ([`crate::digest`]) are made
//! by the same runs ([`digest`]).

use crate::clock::Timestamp;
use crate::notify::Notifier;
use crate::store::{KeyStore, NoticeStore, PurgeReport, StoreError, TokenStore};
use serde::Serialize;

/// How often `ibyok dev` runs [`run`].
pub const DEV_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceReport {
    /// Tokens deleted.
    pub tokens: PurgeReport,
    /// Retired versions destroyed (their ciphertext and wrapped key).
    pub versions: PurgeReport,
    /// Expiry notices sent.
    pub notified: usize,
}

/// Deletes expired tokens, and revoked ones past their grace period (the
/// purge rule, `TokenRecord::purge_second`), and destroys the previous
/// versions of keys whose window has closed, reading only the index entries
/// that are due, so its reads grow with what it deletes (run at least daily:
/// a retired version is destroyed within a day); then, with a notifier,
/// sends each live token's expiry notice once, 7 days before its expiry
/// (`TokenRecord::notice_second`): claimed in the store first, so a token
/// is noticed once however often this runs; a notice that fails to send is
/// put back for the next run.
pub async fn run<S: TokenStore + KeyStore + NoticeStore + ?Sized>(
    store: &S,
    notifier: Option<&dyn Notifier>,
    now: Timestamp,
) -> Result<MaintenanceReport, StoreError> {
    let (tokens, versions) = tokio::join!(store.purge_tokens(now), store.retire_versions(now));
    let mut report = MaintenanceReport { tokens: tokens?, versions: versions?, notified: 0 };
    if let Some(notifier) = notifier {
        for notice in store.claim_expiry_notices(now).await? {
            match notifier.expiry(&notice).await {
                Ok(()) => report.notified += 1,
                Err(e) => {
                    tracing::warn!(token_id = %notice.token_id, error = %crate::fault::chain(&e), "expiry notice not sent; put back");
                    let due = notice.expires_at.plus_seconds(-crate::store::EXPIRY_NOTICE_SECONDS).seconds();
                    store.release_expiry_notice(&notice.token_id, due).await?;
                }
            }
        }
    }
    tracing::info!(
        items_read = report.tokens.items_read,
        deleted = report.tokens.deleted,
        versions_read = report.versions.items_read,
        versions_destroyed = report.versions.deleted,
        notified = report.notified,
        "cleanup"
    );
    Ok(report)
}

/// Digests every tenant's audit shards ([`crate::digest::run`]): the
/// cleanup function after [`run`], `ibyok dev` on the same schedule,
/// `ibyok admin digest` once. `retention_days` is the events' retention
/// (`IBYOK_AUDIT_RETENTION_DAYS`), which a digest's own TTL follows.
pub async fn digest<S: crate::store::DigestStore + ?Sized>(
    store: &S,
    signer: &dyn crate::kms::Signer,
    now: Timestamp,
    retention_days: i64,
) -> Result<crate::digest::DigestReport, StoreError> {
    crate::digest::run(store, signer, now, retention_days).await
}
