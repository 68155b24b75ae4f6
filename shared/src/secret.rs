//! Types that hold secrets. Each zeroizes its memory on drop and prints as
//! `[redacted]`. Their fields are private to this module, so the compiler
//! enforces that the only way to the bytes is an `expose…` call: `grep
//! expose` finds every place a secret is touched (and
//! `every_secret_access_is_an_expose_call` below checks that no other way
//! out — `Deref`, `AsRef`, `Display`, `Serialize`, a public field — appears).

use serde::de::{self, Deserialize, Deserializer, Visitor};
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
    /// Takes bytes that are UTF-8 without copying them; wipes them if not.
    pub fn from_redacted(mut bytes: Redacted<Vec<u8>>) -> Option<Self> {
        match String::from_utf8(std::mem::take(&mut *bytes.0)) {
            Ok(text) => Some(Self::new(text)),
            Err(e) => {
                e.into_bytes().zeroize();
                None
            }
        }
    }
    pub fn expose_value(&self) -> &str {
        &self.0
    }
}

/// Reads a JSON string straight into the zeroizing type (no `String` or
/// `serde_json::Value` in between that would be freed unwiped).
impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(SecretString).map(Self)
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

/// Reads a JSON string straight into the zeroizing type (the CLI reads a
/// new token from `POST /tokens` this way).
impl<'de> Deserialize<'de> for TokenSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(SecretString).map(Self)
    }
}

/// A JSON string into a `Zeroizing<String>` of exactly its length.
struct SecretString;

impl Visitor<'_> for SecretString {
    type Value = Zeroizing<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Zeroizing::new(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Zeroizing::new(v))
    }
}

/// Bytes or text that may hold a secret (a request's `Authorization` header
/// and body, a response body): zeroized on drop, never printed, read only
/// through [`Redacted::expose`].
#[derive(Clone, Default)]
pub struct Redacted<T: Zeroize = String>(Zeroizing<T>);

impl<T: Zeroize> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Zeroize> From<T> for Redacted<T> {
    fn from(v: T) -> Self {
        Self(Zeroizing::new(v))
    }
}

impl<T: Zeroize> Redacted<T> {
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl Redacted<Vec<u8>> {
    /// An empty buffer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Self(Zeroizing::new(Vec::with_capacity(n)))
    }

    /// Hands the bytes to `f` mutably; they stay in this (zeroizing) buffer.
    /// For moving the buffer into an owner that wipes it in turn (the
    /// Lambda bridge, the development server).
    pub fn expose_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

/// Writing into a buffer that wipes every allocation it outgrows: a plain
/// `Vec` would leave a copy of what it held in the freed allocation each
/// time it grew. Response bodies are serialised this way.
impl std::io::Write for Redacted<Vec<u8>> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let v = &mut *self.0;
        if v.capacity() - v.len() < buf.len() {
            let mut grown = Vec::with_capacity((v.len() + buf.len()).max(v.capacity() * 2).max(64));
            grown.extend_from_slice(v);
            v.zeroize(); // wipes the old allocation's whole capacity
            *v = grown;
        }
        v.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
        let r: Redacted = "Bearer secret".to_owned().into();
        for printed in [format!("{v:?}"), format!("{t:?}"), format!("{k:?}"), format!("{r:?}")] {
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

    #[test]
    fn secrets_deserialize_from_json_strings_only() {
        let v: SecretValue = serde_json::from_str(r#""sk-\"x\"""#).unwrap();
        assert_eq!(v.expose_value(), "sk-\"x\"");
        let t: TokenSecret = serde_json::from_str(r#""ibyok_abc""#).unwrap();
        assert_eq!(t.expose_token(), "ibyok_abc");
        assert!(serde_json::from_str::<SecretValue>("12").is_err());
        assert!(serde_json::from_str::<SecretValue>("null").is_err());
    }

    #[test]
    fn a_growing_redacted_buffer_keeps_every_byte() {
        use std::io::Write;
        let mut buf = Redacted::with_capacity(4);
        for i in 0..1000u32 {
            write!(buf, "{i},").unwrap();
        }
        let expected: String = (0..1000u32).map(|i| format!("{i},")).collect();
        assert_eq!(buf.expose().as_slice(), expected.as_bytes());
    }

    /// Every way to a secret's bytes is an `expose…` call: the secret types'
    /// fields are private (so nothing outside this file reaches them), and
    /// this file gives them no other way out. The scan covers the shared
    /// crate, the CLI and the functions.
    #[test]
    fn every_secret_access_is_an_expose_call() {
        const TYPES: [&str; 4] = ["SecretValue", "DataKey", "TokenSecret", "Redacted"];
        let this = include_str!("secret.rs");
        let code = this.split("#[cfg(test)]").next().unwrap();
        // No public field: each is `struct Name(Zeroizing<…>)`, not `(pub …)`.
        for t in TYPES {
            let decl = code.lines().find(|l| l.contains(&format!("pub struct {t}"))).unwrap();
            assert!(!decl.contains("(pub"), "{t} has a public field: {decl}");
        }
        // Every public method that hands out a reference is an expose….
        for line in code.lines().map(str::trim) {
            if line.starts_with("pub fn ") && (line.contains("-> &") || line.contains("-> Option<&")) {
                assert!(line.starts_with("pub fn expose"), "a way to a secret not named expose…: {line}");
            }
        }
        // No trait that reads the inner value without `expose`, in any
        // source of the workspace.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for dir in ["shared/src", "cli/src", "functions", "tests/src"] {
            collect_rs(&root.join(dir), &mut files);
        }
        assert!(files.len() > 20, "the scan found too few sources: {}", files.len());
        const LEAKY: [&str; 9] =
            ["Deref", "DerefMut", "AsRef", "AsMut", "Borrow", "Display", "Serialize", "Into<String>", "Into<Vec"];
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines().filter(|l| l.trim_start().starts_with("impl")) {
                for t in TYPES {
                    let names_type = line.contains(&format!(" for {t}")) || line.contains(&format!("for {t}<"));
                    if names_type {
                        assert!(
                            !LEAKY.iter().any(|l| line.contains(l)),
                            "{}: `{}` exposes a secret without an expose call",
                            path.display(),
                            line.trim()
                        );
                    }
                }
            }
            // Nothing reaches into a secret's field from outside: `.0` on a
            // value named like a secret.
            for (n, line) in text.lines().enumerate() {
                for field in ["authorization", "body", "secret", "token", "value"] {
                    let pat = format!("{field}.0");
                    if let Some(at) = line.find(&pat) {
                        let next = line[at + pat.len()..].chars().next();
                        assert!(
                            next.is_some_and(|c| c.is_ascii_digit()),
                            "{}:{}: `{}` reaches into a secret's field",
                            path.display(),
                            n + 1,
                            line.trim()
                        );
                    }
                }
            }
        }
    }

    fn collect_rs(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect_rs(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
}
