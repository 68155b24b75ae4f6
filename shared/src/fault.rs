//! A backend call that failed: which kind of failure, with its cause kept as
//! the error's source, so that the one log line of a 5xx shows the whole
//! chain (`aws_smithy_types`' `DisplayErrorContext`). Nothing here carries a
//! secret: SDK errors hold no request body, and our own causes name
//! operations and codes only.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use std::error::Error;

/// A cause, boxed.
pub type Cause = Box<dyn Error + Send + Sync + 'static>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// No credentials could be loaded, or the service refused them.
    Credentials,
    /// An attempt, or the whole call, ran out of time.
    Timeout,
    /// The request could not be sent, or its connection failed.
    Dispatch,
    /// The service asked us to slow down.
    Throttled,
    /// The service answered with an error (its code is in the fault).
    Service,
    /// The service's answer could not be read.
    Response,
    /// The request could not be built.
    Construction,
    /// A stored item, or an answer, that does not decode as it must.
    Data,
    /// A local failure (a poisoned lock, a data file).
    Local,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Credentials => "credentials",
            FaultKind::Timeout => "timeout",
            FaultKind::Dispatch => "dispatch failure",
            FaultKind::Throttled => "throttled",
            FaultKind::Service => "service error",
            FaultKind::Response => "unreadable response",
            FaultKind::Construction => "request construction",
            FaultKind::Data => "bad data",
            FaultKind::Local => "local failure",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{what}: {}", kind.as_str())]
pub struct Fault {
    pub kind: FaultKind,
    /// What failed: the service and operation, or the error code.
    pub what: String,
    #[source]
    pub source: Option<Cause>,
}

impl Fault {
    pub fn new(kind: FaultKind, what: impl Into<String>) -> Self {
        Self { kind, what: what.into(), source: None }
    }

    pub fn with_source(mut self, source: impl Into<Cause>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sorts an SDK failure by its kind, keeping it as the source. `throttle`
    /// lists the service's throttling codes. The service's error code, if
    /// any, goes into `what`.
    pub fn from_sdk<E, R>(service: &str, throttle: &[&str], err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let code = err.as_service_error().and_then(|e| e.code()).map(str::to_owned);
        let kind = if chain_has_credentials_error(&err) {
            FaultKind::Credentials
        } else {
            match (&err, code.as_deref()) {
                (_, Some(c)) if throttle.contains(&c) => FaultKind::Throttled,
                (
                    _,
                    Some(
                        "UnrecognizedClientException"
                        | "InvalidSignatureException"
                        | "ExpiredTokenException"
                        | "MissingAuthenticationTokenException",
                    ),
                ) => FaultKind::Credentials,
                (SdkError::ConstructionFailure(_), _) => FaultKind::Construction,
                (SdkError::TimeoutError(_), _) => FaultKind::Timeout,
                (SdkError::DispatchFailure(d), _) if d.is_timeout() => FaultKind::Timeout,
                (SdkError::DispatchFailure(_), _) => FaultKind::Dispatch,
                (SdkError::ResponseError(_), _) => FaultKind::Response,
                _ => FaultKind::Service,
            }
        };
        let what = match code {
            Some(c) => format!("{service} {c}"),
            None => service.to_owned(),
        };
        Fault::new(kind, what).with_source(err)
    }
}

fn chain_has_credentials_error(err: &(dyn Error + 'static)) -> bool {
    let mut next: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = next {
        if e.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The whole chain of an error, for a log line.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(err).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_line_shows_the_whole_chain() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        let fault = Fault::new(FaultKind::Dispatch, "DynamoDB").with_source(inner);
        let line = chain(&fault);
        assert!(line.contains("DynamoDB: dispatch failure"), "{line}");
        assert!(line.contains("connection reset by peer"), "{line}");
    }
}
