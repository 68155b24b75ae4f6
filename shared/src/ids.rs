//! Identifiers. All are opaque to clients, prefixed, and unguessable.
//!
//! A key id carries its tenant's 12-character tag right after `key_`: the read
//! path uses it to fetch the token, the key and the tenant's mode settings in
//! one `BatchGetItem`. The tag grants nothing; the tenant recorded on the key
//! item is what is checked.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const TENANT_TAG_LEN: usize = 12;
const KEY_RANDOM_LEN: usize = 20;

/// `n` uniformly random base62 characters from the OS-seeded CSPRNG.
pub fn random_base62(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n).map(|_| BASE62[rng.gen_range(0..62)] as char).collect()
}

/// Big-endian bytes as base62, left-padded with `0` to `width` characters.
pub fn base62_of_bytes(bytes: &[u8], width: usize) -> String {
    // Repeated division of a big-endian number; inputs here are ≤ 16 bytes.
    let mut digits = Vec::new();
    let mut num: Vec<u8> = bytes.to_vec();
    while num.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in num.iter_mut() {
            let acc = (rem << 8) | u32::from(*b);
            *b = (acc / 62) as u8;
            rem = acc % 62;
        }
        digits.push(BASE62[rem as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    digits.into_iter().map(char::from).collect()
}

pub fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

macro_rules! id_type {
    ($name:ident, $prefix:literal) => {
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Trusts a value read back from the store.
            pub fn from_stored(s: String) -> Self {
                Self(s)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(TenantId, "ten_");
id_type!(KeyId, "key_");
id_type!(TokenId, "tok_");
id_type!(IdentityId, "idn_");
id_type!(MemberId, "mem_");

impl TenantId {
    pub fn generate() -> Self {
        Self(format!("ten_{}", random_base62(TENANT_TAG_LEN)))
    }
    pub fn parse(s: &str) -> Option<Self> {
        let tag = s.strip_prefix("ten_")?;
        (tag.len() == TENANT_TAG_LEN && is_base62(tag)).then(|| Self(s.to_owned()))
    }
    fn tag(&self) -> &str {
        self.0.get(4..).unwrap_or_default()
    }
}

impl KeyId {
    pub fn generate(tenant: &TenantId) -> Self {
        Self(format!("key_{}{}", tenant.tag(), random_base62(KEY_RANDOM_LEN)))
    }
    /// A well-formed key id, or `None` (which callers answer as 404).
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("key_")?;
        (rest.len() == TENANT_TAG_LEN + KEY_RANDOM_LEN && is_base62(rest)).then(|| Self(s.to_owned()))
    }
    /// The tenant this id was minted in (a routing hint, verified on the item).
    pub fn tenant_hint(&self) -> TenantId {
        TenantId(format!("ten_{}", &self.0[4..4 + TENANT_TAG_LEN]))
    }
}

impl TokenId {
    pub(crate) fn from_digest(bytes: &[u8; 16]) -> Self {
        Self(format!("tok_{}", base62_of_bytes(bytes, 22)))
    }
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("tok_")?;
        (rest.len() == 22 && is_base62(rest)).then(|| Self(s.to_owned()))
    }
}

/// Random characters of an identity id (about 143 bits).
const IDENTITY_RANDOM_LEN: usize = 24;

impl IdentityId {
    pub fn generate() -> Self {
        Self(format!("idn_{}", random_base62(IDENTITY_RANDOM_LEN)))
    }
    /// A well-formed identity id, or `None` (which callers answer as 404,
    /// or as the exchange's one 401).
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("idn_")?;
        (rest.len() == IDENTITY_RANDOM_LEN && is_base62(rest)).then(|| Self(s.to_owned()))
    }
}

/// Random characters of a member id (about 143 bits).
const MEMBER_RANDOM_LEN: usize = 24;

impl MemberId {
    pub fn generate() -> Self {
        Self(format!("mem_{}", random_base62(MEMBER_RANDOM_LEN)))
    }
    /// A well-formed member id, or `None` (which callers answer as 404).
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("mem_")?;
        (rest.len() == MEMBER_RANDOM_LEN && is_base62(rest)).then(|| Self(s.to_owned()))
    }
}

/// A fresh audit event id: a counter that grows within this process, then
/// random digits. Events of one millisecond list in the order this process
/// made them (newest first); the random part keeps processes apart.
pub fn new_event_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{n:012x}{}", random_base62(8))
}

/// A fresh request id, for responses that did not come through API Gateway.
pub fn new_request_id() -> String {
    random_base62(20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_pads_and_orders_digits() {
        assert_eq!(base62_of_bytes(&[0, 0, 0, 0], 6), "000000");
        assert_eq!(base62_of_bytes(&[0, 0, 0, 61], 6), "00000z");
        assert_eq!(base62_of_bytes(&[0, 0, 0, 62], 6), "000010");
        assert_eq!(base62_of_bytes(&0xFFFF_FFFFu32.to_be_bytes(), 6), "4gfFC3");
    }

    #[test]
    fn key_id_carries_its_tenant() {
        let tenant = TenantId::generate();
        let key = KeyId::generate(&tenant);
        assert_eq!(KeyId::parse(key.as_str()), Some(key.clone()));
        assert_eq!(key.tenant_hint(), tenant);
        assert!(KeyId::parse("key_short").is_none());
        assert!(KeyId::parse(&format!("{}!", &key.as_str()[..key.as_str().len() - 1])).is_none());
    }
}
