//! Scheduled: the maintenance run (`ibyok::maintenance`): deletes expired
//! tokens, and revoked ones past their grace period, and destroys retired
//! key versions, reading only the index entries that are due; and sends
//! each token's expiry notice once, 7 days before it expires, to the
//! stack's SNS topic. Then it signs the audit log's new digests
//! (`ibyok::digest`; `kms:Sign` on the audit signing key, its only KMS right).

use ibyok::clock::Clock;
use ibyok::maintenance::MaintenanceReport;
use ibyok::notify::Notifier;
use ibyok::store::{DigestStore, KeyStore, NoticeStore, StoreError, TokenStore};

/// Generic over the store, bounded by the aggregates cleanup touches
/// (tokens, key versions, notices), so that the binary, on the DynamoDB
/// store itself, links only the store methods cleanup calls (a `&dyn Store`
/// would keep every method through its vtable).
pub async fn handler<S: TokenStore + KeyStore + NoticeStore + ?Sized>(
    store: &S,
    notifier: Option<&dyn Notifier>,
    clock: &dyn Clock,
) -> Result<MaintenanceReport, StoreError> {
    ibyok::maintenance::run(store, notifier, clock.now()).await
}

/// The audit digests' part of the run (`ibyok::digest`).
pub async fn digest<S: DigestStore + ?Sized>(
    store: &S,
    signer: &dyn ibyok::kms::Signer,
    clock: &dyn Clock,
    retention_days: i64,
) -> Result<ibyok::digest::DigestReport, StoreError> {
    ibyok::maintenance::digest(store, signer, clock.now(), retention_days).await
}
