//! A KMS stand-in for the local development server: data keys are wrapped
//! with AES-256-GCM under a master key held on this machine, with the
//! encryption context as associated data. Never for production.

use super::{GeneratedKey, KeyContext, Kms, KmsError, Signer};
use crate::secret::DataKey;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use rand::RngCore;
use zeroize::Zeroizing;

pub struct LocalKms {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKms([redacted])")
    }
}

fn context_aad(ctx: &KeyContext) -> Vec<u8> {
    let mut aad = b"ibyok-local-kms:v1".to_vec();
    for (k, v) in ctx.pairs() {
        aad.push(0);
        aad.extend_from_slice(k.as_bytes());
        aad.push(0);
        aad.extend_from_slice(v.as_bytes());
    }
    aad
}

impl LocalKms {
    pub fn new(master: &DataKey) -> Self {
        Self { cipher: Aes256Gcm::new(master.expose_key().into()) }
    }

    /// A fresh random master key (state lives only as long as the process).
    pub fn ephemeral() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::thread_rng().fill_bytes(bytes.as_mut());
        #[allow(clippy::expect_used, reason = "the array is 32 bytes, the one length from_slice takes")]
        Self::new(&DataKey::from_slice(bytes.as_mut()).expect("32 bytes"))
    }

    /// Loads the master key from `path`, creating it (mode 0600) if missing.
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Self> {
        let mut bytes = match std::fs::read(path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut fresh = Zeroizing::new(vec![0u8; 32]);
                rand::thread_rng().fill_bytes(fresh.as_mut());
                crate::files::create_private(path, &fresh)?;
                fresh
            }
            Err(e) => return Err(e),
        };
        let key = DataKey::from_slice(bytes.as_mut_slice())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "master key must be 32 bytes"))?;
        Ok(Self::new(&key))
    }
}

#[async_trait]
impl Kms for LocalKms {
    async fn generate_data_key(&self, ctx: &KeyContext) -> Result<GeneratedKey, KmsError> {
        let mut key = Zeroizing::new([0u8; 32]);
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(key.as_mut());
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = context_aad(ctx);
        let sealed =
            self.cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: key.as_ref(), aad: &aad }).map_err(|_| {
                KmsError::Internal(crate::fault::Fault::new(crate::fault::FaultKind::Local, "local wrap failed"))
            })?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&sealed);
        #[allow(clippy::expect_used, reason = "the key is 32 bytes, the one length from_slice takes")]
        let plaintext = DataKey::from_slice(key.as_mut()).expect("32 bytes");
        Ok(GeneratedKey { plaintext, wrapped })
    }

    async fn decrypt_data_key(&self, wrapped: &[u8], ctx: &KeyContext) -> Result<DataKey, KmsError> {
        if wrapped.len() < 12 + 16 {
            return Err(KmsError::Integrity);
        }
        let (nonce, sealed) = wrapped.split_at(12);
        let aad = context_aad(ctx);
        let mut opened = Zeroizing::new(
            self.cipher
                .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
                .map_err(|_| KmsError::Integrity)?,
        );
        DataKey::from_slice(opened.as_mut_slice()).ok_or(KmsError::Integrity)
    }
}

/// The audit digests' signing key of `ibyok dev`: an ECDSA P-256 key pair
/// (aws-lc-rs) held on this machine, in its data directory (PKCS#8, mode
/// 0600) or in memory only. Never for production.
pub struct LocalSigner {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
    key_id: String,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSigner").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

fn local_failure(what: &str) -> KmsError {
    KmsError::Internal(crate::fault::Fault::new(crate::fault::FaultKind::Local, what.to_owned()))
}

impl LocalSigner {
    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KmsError> {
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8)
            .map_err(|_| local_failure("the local signing key does not parse"))?;
        let fingerprint = {
            use sha2::Digest;
            let d = sha2::Sha256::digest(pair.public_key().as_ref());
            d.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>()
        };
        Ok(Self { pair, key_id: format!("local:{fingerprint}") })
    }

    fn fresh_pkcs8() -> Result<Zeroizing<Vec<u8>>, KmsError> {
        use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &aws_lc_rs::rand::SystemRandom::new())
            .map_err(|_| local_failure("generating the local signing key failed"))?;
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// A fresh key, for as long as the process runs.
    pub fn ephemeral() -> Result<Self, KmsError> {
        Self::from_pkcs8(&Self::fresh_pkcs8()?)
    }

    /// Loads the key from `path`, creating it (mode 0600) if missing.
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Self> {
        let invalid = |e: KmsError| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
        let pkcs8 = match std::fs::read(path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let fresh = Self::fresh_pkcs8().map_err(invalid)?;
                crate::files::create_private(path, &fresh)?;
                fresh
            }
            Err(e) => return Err(e),
        };
        Self::from_pkcs8(&pkcs8).map_err(invalid)
    }
}

#[async_trait]
impl Signer for LocalSigner {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KmsError> {
        let sig = self
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
            .map_err(|_| local_failure("local signing failed"))?;
        Ok(sig.as_ref().to_vec())
    }

    async fn verify(&self, message: &[u8], signature: &[u8]) -> Result<bool, KmsError> {
        Ok(crate::digest::signature_valid(&self.public_key().await?, message, signature))
    }

    async fn public_key(&self) -> Result<Vec<u8>, KmsError> {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair;
        let der = self.pair.public_key().as_der().map_err(|_| local_failure("encoding the public key failed"))?;
        Ok(der.as_ref().to_vec())
    }
}
