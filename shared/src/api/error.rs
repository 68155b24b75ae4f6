//! One error type for every route, and its one mapping to the contract's
//! status, code and body. The cause of a 5xx is logged once, with the request
//! id; the client sees a generic sentence.

use super::ApiResponse;
use crate::envelope::EnvelopeError;
use crate::fault::Cause;
use crate::kms::KmsError;
use crate::store::StoreError;

/// Seconds a client is asked to wait after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 2;

pub const UNAUTHORIZED_MESSAGE: &str = "missing, malformed, unknown, expired or revoked token";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(&'static str),
    /// With the methods the path takes, for the `Allow` header.
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The token's rate limit is used up for this minute.
    #[error("rate limited")]
    RateLimited { retry_after: i64 },
    /// The tenant's monthly quota of value reads is used up.
    #[error("quota exceeded")]
    QuotaExceeded { retry_after: i64 },
    /// The cause is for the log only (its whole chain, no secret).
    #[error("unavailable")]
    Unavailable(#[source] Cause),
    /// The cause is for the log only (its whole chain, no secret).
    #[error("internal")]
    Internal(#[source] Cause),
}

impl ApiError {
    pub fn bad(field: &str, rule: &str) -> Self {
        ApiError::BadRequest(format!("{field}: {rule}"))
    }

    /// A 500 whose cause is a sentence of ours (no secret in it).
    pub fn internal(cause: &'static str) -> Self {
        ApiError::Internal(cause.into())
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Conflict(_) => 409,
            ApiError::PayloadTooLarge => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded { .. } => 429,
            ApiError::Unavailable(_) => 503,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::QuotaExceeded { .. } => "quota_exceeded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The sentence the client sees. Never carries an internal cause.
    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m) | ApiError::Forbidden(m) | ApiError::Conflict(m) => m.clone(),
            ApiError::NotFound(m) => (*m).to_owned(),
            ApiError::Unauthorized => UNAUTHORIZED_MESSAGE.to_owned(),
            ApiError::MethodNotAllowed(_) => "this path does not take that method".to_owned(),
            ApiError::PayloadTooLarge => {
                "the request body is over its limit (64 KiB; 1 MiB for a secret scanning report)".to_owned()
            }
            ApiError::UnsupportedMediaType => "the request body must be application/json".to_owned(),
            ApiError::RateLimited { .. } => "this token's rate limit for the current UTC minute is used up".to_owned(),
            ApiError::QuotaExceeded { .. } => {
                "this tenant's monthly quota of value reads is used up; it resets at the start of the next UTC month"
                    .to_owned()
            }
            ApiError::Unavailable(_) => "a backend service is unavailable; retry later".to_owned(),
            ApiError::Internal(_) => "an internal error occurred".to_owned(),
        }
    }

    pub fn into_response(self) -> ApiResponse {
        let body = serde_json::json!({"error": {"code": self.code(), "message": self.message()}});
        let mut resp = ApiResponse::json(self.status(), &body);
        match self {
            ApiError::Unauthorized => resp.headers.push(("www-authenticate", "Bearer".to_owned())),
            ApiError::Unavailable(_) => resp.headers.push(("retry-after", RETRY_AFTER_SECONDS.to_string())),
            ApiError::MethodNotAllowed(allow) => resp.headers.push(("allow", allow)),
            ApiError::RateLimited { retry_after } | ApiError::QuotaExceeded { retry_after } => {
                resp.headers.push(("retry-after", retry_after.max(1).to_string()))
            }
            _ => {}
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("no such resource"),
            StoreError::Conflict(c) => ApiError::Conflict(c.to_string()),
            StoreError::BadCursor => ApiError::bad("cursor", "not a cursor from this listing"),
            e @ StoreError::Unavailable(_) => ApiError::Unavailable(e.into()),
            e @ StoreError::Internal(_) => ApiError::Internal(e.into()),
        }
    }
}

impl From<KmsError> for ApiError {
    fn from(e: KmsError) -> Self {
        match e {
            e @ KmsError::Unavailable(_) => ApiError::Unavailable(e.into()),
            e @ (KmsError::Integrity | KmsError::Internal(_)) => ApiError::Internal(e.into()),
        }
    }
}

impl From<EnvelopeError> for ApiError {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::Kms(k) => k.into(),
            e @ EnvelopeError::Integrity => ApiError::Internal(e.into()),
        }
    }
}
