//! The KMS adapter over `aws-sdk-kms`.

use super::{GeneratedKey, KeyContext, Kms, KmsError, Signer};
use crate::fault::{Fault, FaultKind};
use crate::secret::DataKey;
use async_trait::async_trait;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, MessageType, SigningAlgorithmSpec};
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
    ctx.pairs().into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

const THROTTLING_CODES: &[&str] = &["ThrottlingException", "LimitExceededException"];

/// Sorts an SDK failure into the port's three outcomes, keeping it as the
/// fault's source. The SDK has already retried throttling and transient
/// faults by the time this runs.
fn classify<E>(err: SdkError<E>) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.as_service_error().and_then(|e| e.code()).map(str::to_owned);
    if matches!(code.as_deref(), Some("InvalidCiphertextException" | "IncorrectKeyException")) {
        return KmsError::Integrity;
    }
    let server_error = matches!(&err, SdkError::ServiceError(e) if e.raw().status().is_server_error());
    let fault = Fault::from_sdk("KMS", THROTTLING_CODES, err);
    let unavailable = match fault.kind {
        FaultKind::Throttled | FaultKind::Timeout | FaultKind::Dispatch | FaultKind::Response => true,
        FaultKind::Service => {
            server_error
                || matches!(
                    code.as_deref(),
                    Some(
                        "KMSInternalException"
                            | "DependencyTimeoutException"
                            | "KeyUnavailableException"
                            | "ServiceUnavailableException"
                    )
                )
        }
        _ => false,
    };
    if unavailable {
        KmsError::Unavailable(fault)
    } else {
        KmsError::Internal(fault)
    }
}

fn bad_answer(what: &str) -> KmsError {
    KmsError::Internal(Fault::new(FaultKind::Data, what))
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
            .ok_or_else(|| bad_answer("KMS GenerateDataKey returned no ciphertext"))?;
        let mut plain = out.plaintext.map(Blob::into_inner).unwrap_or_default();
        let plaintext = DataKey::from_slice(&mut plain)
            .ok_or_else(|| bad_answer("KMS GenerateDataKey returned a key of the wrong size"));
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

/// The audit digests' signing key in KMS (`ECC_NIST_P256`, `SIGN_VERIFY`):
/// the cleanup function signs (`kms:Sign` only), the account function
/// publishes the public key (`kms:GetPublicKey` only), kept once fetched.
#[derive(Debug)]
pub struct AwsSigner {
    client: Client,
    key_id: String,
    public_key: std::sync::OnceLock<Vec<u8>>,
}

impl AwsSigner {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self { client, key_id: key_id.into(), public_key: std::sync::OnceLock::new() }
    }
}

#[async_trait]
impl Signer for AwsSigner {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KmsError> {
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(classify)?;
        out.signature.map(Blob::into_inner).ok_or_else(|| bad_answer("KMS Sign returned no signature"))
    }

    async fn verify(&self, message: &[u8], signature: &[u8]) -> Result<bool, KmsError> {
        let sent = self
            .client
            .verify()
            .key_id(&self.key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signature(Blob::new(signature))
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out.signature_valid),
            Err(e) if e.as_service_error().and_then(|x| x.code()) == Some("KMSInvalidSignatureException") => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    async fn public_key(&self) -> Result<Vec<u8>, KmsError> {
        if let Some(k) = self.public_key.get() {
            return Ok(k.clone());
        }
        let out = self.client.get_public_key().key_id(&self.key_id).send().await.map_err(classify)?;
        let key = out.public_key.map(Blob::into_inner).ok_or_else(|| bad_answer("KMS GetPublicKey returned no key"))?;
        Ok(self.public_key.get_or_init(|| key).clone())
    }
}
