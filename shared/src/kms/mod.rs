//! The KMS port: generate and unwrap 256-bit data keys, bound to an
//! encryption context.
//!
//! Adapters: [`aws::AwsKms`] (production and the integration tests, through
//! `aws-sdk-kms`) and [`local::LocalKms`] (a master key on the machine, for
//! the development server only).

pub mod aws;
pub mod local;

use crate::fault::{Fault, FaultKind};
use crate::ids::{KeyId, TenantId};
use crate::secret::DataKey;
use async_trait::async_trait;

/// The encryption context a data key is bound to: the tenant, the key and
/// the value's version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyContext {
    pub tenant_id: TenantId,
    pub key_id: KeyId,
    /// The version number (from 1). Version 1 is bound by the absence of a
    /// `version` pair, the context every value had before versions existed,
    /// so that those envelopes open unchanged as version 1; any later
    /// version adds `version: N`. No two versions share a context.
    pub version: u64,
}

impl KeyContext {
    /// The context of version `version` of a key.
    pub fn new(tenant_id: &TenantId, key_id: &KeyId, version: u64) -> Self {
        Self { tenant_id: tenant_id.clone(), key_id: key_id.clone(), version }
    }

    /// The context's pairs, sorted by name. The context keys are `keyId`,
    /// `tenantId` and, from version 2, `version`; the template's key policy
    /// names them.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs =
            vec![("keyId", self.key_id.as_str().to_owned()), ("tenantId", self.tenant_id.as_str().to_owned())];
        if self.version != 1 {
            pairs.push(("version", self.version.to_string()));
        }
        pairs
    }
}

pub struct GeneratedKey {
    pub plaintext: DataKey,
    pub wrapped: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The wrapped key does not open under this context: tampering, or an
    /// envelope moved between items.
    #[error("the wrapped data key failed its integrity check")]
    Integrity,
    /// Throttled or unreachable after the SDK's retries.
    #[error("KMS is unavailable")]
    Unavailable(#[source] Fault),
    #[error("KMS failed")]
    Internal(#[source] Fault),
}

#[async_trait]
pub trait Kms: Send + Sync {
    async fn generate_data_key(&self, ctx: &KeyContext) -> Result<GeneratedKey, KmsError>;
    async fn decrypt_data_key(&self, wrapped: &[u8], ctx: &KeyContext) -> Result<DataKey, KmsError>;
}

/// The audit digests' signing key ([`crate::digest`]): ECDSA on P-256 with
/// SHA-256 (KMS key spec `ECC_NIST_P256`, usage `SIGN_VERIFY`, algorithm
/// `ECDSA_SHA_256`), a key of its own, apart from the envelope key.
/// Adapters: [`aws::AwsSigner`] (`kms:Sign`, `kms:Verify`,
/// `kms:GetPublicKey`) and [`local::LocalSigner`] (aws-lc-rs, for `ibyok
/// dev`).
#[async_trait]
pub trait Signer: Send + Sync {
    /// The key as digests name it (the KMS key's ARN or id; `local:…` for
    /// the local key).
    fn key_id(&self) -> &str;
    /// The ASN.1 DER signature of `message` (hashed with SHA-256 by the
    /// signer; at most 4,096 bytes, KMS's limit for a raw message).
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KmsError>;
    /// Whether `signature` is this key's over `message`.
    async fn verify(&self, message: &[u8], signature: &[u8]) -> Result<bool, KmsError>;
    /// The public key, DER `SubjectPublicKeyInfo` (what verifiers use).
    async fn public_key(&self) -> Result<Vec<u8>, KmsError>;
}

/// The KMS of a function that has no KMS key (and no KMS permission): every
/// call fails. Only `submit` and `retrieve` are given the key.
#[derive(Debug, Default)]
pub struct Unconfigured;

fn unconfigured() -> KmsError {
    KmsError::Internal(Fault::new(FaultKind::Construction, "this function has no KMS key (IBYOK_KMS_KEY_ID)"))
}

#[async_trait]
impl Kms for Unconfigured {
    async fn generate_data_key(&self, _: &KeyContext) -> Result<GeneratedKey, KmsError> {
        Err(unconfigured())
    }
    async fn decrypt_data_key(&self, _: &[u8], _: &KeyContext) -> Result<DataKey, KmsError> {
        Err(unconfigured())
    }
}
