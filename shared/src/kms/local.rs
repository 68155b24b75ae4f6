//! A KMS stand-in for the local development server: data keys are wrapped
//! with AES-256-GCM under a master key held on this machine, with the
//! encryption context as associated data. Never for production.

use super::{GeneratedKey, KeyContext, Kms, KmsError};
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
