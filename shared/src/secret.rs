//! Types that hold secrets. Each zeroizes its memory on drop and prints as
//! `[redacted]`; the only way to the bytes is an explicit `expose_…` call, so
//! `grep expose_` finds every place a secret is touched.

use std::fmt;
use zeroize::{Zeroize, Zeroizing};

macro_rules! redacted_debug {
    ($t:ty) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($t), "([redacted])"))
            }
        }
    };
}

/// A provider API key's plaintext value.
#[derive(Clone)]
pub struct SecretValue(Zeroizing<String>);
redacted_debug!(SecretValue);

impl SecretValue {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }
    pub fn from_utf8(bytes: Zeroizing<Vec<u8>>) -> Option<Self> {
        let text = std::str::from_utf8(&bytes).ok()?;
        Some(Self::new(text.to_owned()))
    }
    pub fn expose_value(&self) -> &str {
        &self.0
    }
}

/// A 256-bit data key in plaintext, as KMS hands it out.
pub struct DataKey(Zeroizing<[u8; 32]>);
redacted_debug!(DataKey);

impl DataKey {
    /// Takes the bytes; refuses anything but 32 of them. The source is wiped.
    pub fn from_slice(bytes: &mut [u8]) -> Option<Self> {
        if bytes.len() != 32 {
            bytes.zeroize();
            return None;
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(bytes);
        bytes.zeroize();
        Some(Self(key))
    }
    pub fn expose_key(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A bearer token as the caller presented it (or as it was just minted).
#[derive(Clone)]
pub struct TokenSecret(Zeroizing<String>);
redacted_debug!(TokenSecret);

impl TokenSecret {
    pub fn new(token: String) -> Self {
        Self(Zeroizing::new(token))
    }
    pub fn expose_token(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let v = SecretValue::new("sk-very-secret".into());
        let t = TokenSecret::new("ibyok_abc".into());
        let k = DataKey::from_slice(&mut [7u8; 32]).unwrap();
        for printed in [format!("{v:?}"), format!("{t:?}"), format!("{k:?}")] {
            assert!(printed.contains("[redacted]"), "{printed}");
            assert!(!printed.contains("secret") && !printed.contains("abc") && !printed.contains('7'));
        }
    }

    #[test]
    fn data_key_refuses_wrong_length_and_wipes_source() {
        let mut short = [9u8; 16];
        assert!(DataKey::from_slice(&mut short).is_none());
        assert_eq!(short, [0u8; 16]);
    }
}
