//! The KMS adapter over `aws-sdk-kms`.

use super::{GeneratedKey, KeyContext, Kms, KmsError};
use crate::secret::DataKey;
use async_trait::async_trait;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use aws_sdk_kms::Client;
use zeroize::Zeroize;

#[derive(Clone, Debug)]
pub struct AwsKms {
    client: Client,
    key_id: String,
}

impl AwsKms {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self { client, key_id: key_id.into() }
    }
}

fn context_map(ctx: &KeyContext) -> std::collections::HashMap<String, String> {
    ctx.pairs().iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Sorts an SDK failure into the port's three outcomes. The SDK has already
/// retried throttling and transient faults by the time this runs.
fn classify<E: ProvideErrorMetadata + std::fmt::Debug>(err: SdkError<E>) -> KmsError {
    let code = err.as_service_error().and_then(|e| e.code()).map(str::to_owned);
    match code.as_deref() {
        Some("InvalidCiphertextException") | Some("IncorrectKeyException") => KmsError::Integrity,
        Some(
            "ThrottlingException"
            | "KMSInternalException"
            | "DependencyTimeoutException"
            | "LimitExceededException"
            | "KeyUnavailableException"
            | "ServiceUnavailableException",
        ) => KmsError::Unavailable(code.unwrap_or_default()),
        Some(other) => KmsError::Internal(other.to_owned()),
        None => match err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                KmsError::Unavailable("no response".into())
            }
            SdkError::ServiceError(e) if e.raw().status().is_server_error() => {
                KmsError::Unavailable(format!("status {}", e.raw().status().as_u16()))
            }
            _ => KmsError::Internal("unclassified KMS error".into()),
        },
    }
}

#[async_trait]
impl Kms for AwsKms {
    async fn generate_data_key(&self, ctx: &KeyContext) -> Result<GeneratedKey, KmsError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context_map(ctx)))
            .send()
            .await
            .map_err(classify)?;
        let wrapped = out
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| KmsError::Internal("GenerateDataKey returned no ciphertext".into()))?;
        let mut plain = out.plaintext.map(Blob::into_inner).unwrap_or_default();
        let plaintext = DataKey::from_slice(&mut plain)
            .ok_or_else(|| KmsError::Internal("GenerateDataKey returned a key of the wrong size".into()));
        plain.zeroize();
        Ok(GeneratedKey { plaintext: plaintext?, wrapped })
    }

    async fn decrypt_data_key(&self, wrapped: &[u8], ctx: &KeyContext) -> Result<DataKey, KmsError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(Some(context_map(ctx)))
            .send()
            .await
            .map_err(classify)?;
        let mut plain = out.plaintext.map(Blob::into_inner).unwrap_or_default();
        let key = DataKey::from_slice(&mut plain).ok_or(KmsError::Integrity);
        plain.zeroize();
        key
    }
}
