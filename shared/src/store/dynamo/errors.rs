//! Error classification: an SDK failure sorted into the port's outcomes.

use super::*;

pub(super) const THROTTLING_CODES: &[&str] =
    &["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"];

/// Service errors that a later attempt may not meet.
pub(super) const UNAVAILABLE_CODES: &[&str] =
    &["InternalServerError", "ServiceUnavailable", "TransactionConflictException", "TransactionInProgressException"];

/// Sorts an SDK failure. The SDK has already retried what it retries. A
/// failed condition means, everywhere this adapter writes with one outside a
/// transaction, that the item is not there (or not the tenant's):
/// `NotFound`. The SDK error stays the fault's source.
pub(super) fn classify<E>(err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.as_service_error().and_then(|e| e.code()).map(str::to_owned);
    if code.as_deref() == Some("ConditionalCheckFailedException") {
        return StoreError::NotFound;
    }
    let server_error = matches!(&err, SdkError::ServiceError(e) if e.raw().status().is_server_error());
    let fault = Fault::from_sdk("DynamoDB", THROTTLING_CODES, err);
    let unavailable = match fault.kind {
        FaultKind::Throttled | FaultKind::Timeout | FaultKind::Dispatch | FaultKind::Response => true,
        FaultKind::Service => code.as_deref().is_some_and(|c| UNAVAILABLE_CODES.contains(&c)) || server_error,
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(fault)
    } else {
        StoreError::Internal(fault)
    }
}

/// A conditional write outside a transaction: `true` if it was written,
/// `false` if its condition failed (which [`classify`] calls `NotFound`).
pub(super) fn written<T>(r: Result<T, StoreError>) -> Result<bool, StoreError> {
    match r {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A cancelled transaction: which of its items failed a condition, if any.
pub(super) fn classify_tx(err: SdkError<TransactWriteItemsError>) -> Result<usize, StoreError> {
    if let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error() {
        let reasons = e.cancellation_reasons();
        if let Some(i) = reasons.iter().position(|r| r.code() == Some("ConditionalCheckFailed")) {
            return Ok(i);
        }
        if reasons.iter().any(|r| {
            matches!(r.code(), Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"))
        }) {
            let fault = Fault::new(FaultKind::Throttled, "DynamoDB TransactWriteItems: conflict or throttling");
            return Err(StoreError::Unavailable(fault.with_source(err)));
        }
    }
    Err(classify(err))
}

pub(super) fn build<T>(r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Internal(Fault::new(FaultKind::Construction, "DynamoDB request").with_source(e)))
}
