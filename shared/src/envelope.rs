//! Envelope encryption: each value (each version of a key's value) is sealed
//! with AES-256-GCM under its own data key from KMS; the tenant id, the key
//! id and the version number are bound both as the AEAD's associated data
//! and as the KMS encryption context, so an envelope moved to another
//! version, key or tenant fails to open.

use crate::kms::{KeyContext, Kms, KmsError};
use crate::secret::{DataKey, SecretValue};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

pub const NONCE_LEN: usize = 12;

/// What is stored: ciphertext (with its GCM tag), nonce and wrapped data key.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    pub ciphertext: Vec<u8>,
    pub nonce: [u8; NONCE_LEN],
    pub wrapped_key: Vec<u8>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("wrapped_key_len", &self.wrapped_key.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// The ciphertext does not open under its data key and context.
    #[error("the sealed value failed its integrity check")]
    Integrity,
}

/// Version 1 keeps the associated data that every value had before versions
/// (so that those envelopes open as version 1); a later version's names its
/// number too. No two versions share it.
fn aad(ctx: &KeyContext) -> Vec<u8> {
    match ctx.version {
        1 => format!("ibyok:value:v1\0{}\0{}", ctx.tenant_id, ctx.key_id).into_bytes(),
        n => format!("ibyok:value:v2\0{}\0{}\0{n}", ctx.tenant_id, ctx.key_id).into_bytes(),
    }
}

fn cipher(key: &DataKey) -> Aes256Gcm {
    Aes256Gcm::new(key.expose_key().into())
}

/// Seals `value` under a fresh data key: one `GenerateDataKey` call.
pub async fn seal(kms: &dyn Kms, ctx: &KeyContext, value: &SecretValue) -> Result<Envelope, EnvelopeError> {
    let generated = kms.generate_data_key(ctx).await?;
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let ciphertext = cipher(&generated.plaintext)
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: value.expose_value().as_bytes(), aad: &aad(ctx) })
        .map_err(|_| EnvelopeError::Integrity)?;
    Ok(Envelope { ciphertext, nonce, wrapped_key: generated.wrapped })
}

/// Opens an envelope: one `Decrypt` call for the data key.
pub async fn open(kms: &dyn Kms, ctx: &KeyContext, envelope: &Envelope) -> Result<SecretValue, EnvelopeError> {
    let key = kms.decrypt_data_key(&envelope.wrapped_key, ctx).await?;
    let plain = cipher(&key)
        .decrypt(Nonce::from_slice(&envelope.nonce), Payload { msg: &envelope.ciphertext, aad: &aad(ctx) })
        .map_err(|_| EnvelopeError::Integrity)?;
    SecretValue::from_utf8(Zeroizing::new(plain)).ok_or(EnvelopeError::Integrity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{KeyId, TenantId};
    use crate::kms::local::LocalKms;

    fn ctx() -> KeyContext {
        let tenant_id = TenantId::generate();
        KeyContext { key_id: KeyId::generate(&tenant_id), tenant_id, version: 1 }
    }

    #[tokio::test]
    async fn seal_then_open_round_trips() {
        let kms = LocalKms::ephemeral();
        let c = ctx();
        let env = seal(&kms, &c, &SecretValue::new("sk-live-123".into())).await.unwrap();
        assert!(!env.ciphertext.windows(11).any(|w| w == b"sk-live-123"));
        assert_eq!(open(&kms, &c, &env).await.unwrap().expose_value(), "sk-live-123");
    }

    #[tokio::test]
    async fn a_wrong_context_fails_to_open() {
        let kms = LocalKms::ephemeral();
        let c = ctx();
        let env = seal(&kms, &c, &SecretValue::new("sk-live-123".into())).await.unwrap();
        let other_key = KeyContext { key_id: KeyId::generate(&c.tenant_id), ..c.clone() };
        assert!(matches!(open(&kms, &other_key, &env).await, Err(EnvelopeError::Kms(KmsError::Integrity))));
        let other_tenant = KeyContext { tenant_id: TenantId::generate(), ..c.clone() };
        assert!(open(&kms, &other_tenant, &env).await.is_err());
    }

    #[tokio::test]
    async fn an_envelope_moved_to_another_version_fails_to_open() {
        let kms = LocalKms::ephemeral();
        for (sealed_as, opened_as) in [(1, 2), (2, 1), (2, 3), (3, 2), (7, 70)] {
            let c = KeyContext { version: sealed_as, ..ctx() };
            let env = seal(&kms, &c, &SecretValue::new("sk-live-123".into())).await.unwrap();
            assert_eq!(open(&kms, &c, &env).await.unwrap().expose_value(), "sk-live-123");
            let moved = KeyContext { version: opened_as, ..c.clone() };
            assert!(open(&kms, &moved, &env).await.is_err(), "v{sealed_as} opened as v{opened_as}");
        }
    }

    #[test]
    fn version_one_keeps_the_earlier_binding_and_later_versions_name_theirs() {
        let c = ctx();
        assert_eq!(aad(&c), format!("ibyok:value:v1\0{}\0{}", c.tenant_id, c.key_id).into_bytes());
        assert_eq!(c.pairs().len(), 2);
        let v2 = KeyContext { version: 2, ..c };
        assert!(v2.pairs().contains(&("version", "2".to_owned())));
        assert!(aad(&v2).ends_with(b"\x002"));
    }

    #[tokio::test]
    async fn a_flipped_ciphertext_byte_fails_to_open() {
        let kms = LocalKms::ephemeral();
        let c = ctx();
        let mut env = seal(&kms, &c, &SecretValue::new("sk-live-123".into())).await.unwrap();
        env.ciphertext[0] ^= 1;
        assert!(matches!(open(&kms, &c, &env).await, Err(EnvelopeError::Integrity)));
    }

    #[tokio::test]
    async fn each_seal_uses_a_fresh_data_key_and_nonce() {
        let kms = LocalKms::ephemeral();
        let c = ctx();
        let v = SecretValue::new("same".into());
        let (a, b) = (seal(&kms, &c, &v).await.unwrap(), seal(&kms, &c, &v).await.unwrap());
        assert_ne!(a.wrapped_key, b.wrapped_key);
        assert_ne!(a.nonce, b.nonce);
    }
}
