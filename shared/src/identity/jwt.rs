//! The JWT checks of `POST /auth/oidc`, in the order they run: the shape
//! ([`parse`]), the signature by a key of the issuer's JWKS
//! ([`Parsed::verify_signature`], the algorithm pinned by the key), then the
//! claims against the identity's rule ([`check_claims`]). Each refusal
//! names its [`Denied`] cause; the caller answers all of them alike.
//!
//! Signatures are verified with aws-lc-rs (already linked for TLS):
//! RSASSA-PKCS1-v1_5 with SHA-256/384/512 (keys of 2,048 to 8,192 bits) and
//! ECDSA P-256/SHA-256 and P-384/SHA-384.

use super::{Denied, OidcRule};
use crate::clock::Timestamp;
use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECONDS: i64 = 60;
/// The longest `exp − iat` accepted.
pub const MAX_LIFETIME_SECONDS: i64 = 86_400;
/// A longer token is refused unread.
pub const MAX_JWT_BYTES: usize = 16 * 1024;

/// The asymmetric algorithms accepted; `none` and the HMACs never are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Es256,
    Es384,
}

impl Alg {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Alg::Rs256),
            "RS384" => Some(Alg::Rs384),
            "RS512" => Some(Alg::Rs512),
            "ES256" => Some(Alg::Es256),
            "ES384" => Some(Alg::Es384),
            _ => None,
        }
    }
}

/// An elliptic curve of the accepted ECDSA algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

/// A public key from a JWKS, with what it may verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        alg: Option<Alg>,
    },
    /// The uncompressed point (`0x04 ‖ x ‖ y`).
    Ec {
        curve: Curve,
        point: Vec<u8>,
        alg: Option<Alg>,
    },
}

impl VerifyKey {
    /// A key of a JWKS document, if it is a signing key of a kind we verify
    /// (others are skipped: a JWKS may hold encryption keys too).
    pub fn from_jwk(jwk: &Map<String, Value>) -> Option<(String, VerifyKey)> {
        let text = |k: &str| jwk.get(k).and_then(Value::as_str);
        let bytes = |k: &str| text(k).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
        if text("use").is_some_and(|u| u != "sig") {
            return None;
        }
        let kid = text("kid")?.to_owned();
        let alg = match text("alg") {
            None => None,
            Some(a) => Some(Alg::parse(a)?),
        };
        let key = match text("kty")? {
            "RSA" => VerifyKey::Rsa { n: bytes("n")?, e: bytes("e")?, alg },
            "EC" => {
                let (curve, len) = match text("crv")? {
                    "P-256" => (Curve::P256, 32),
                    "P-384" => (Curve::P384, 48),
                    _ => return None,
                };
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != len || y.len() != len {
                    return None;
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                VerifyKey::Ec { curve, point, alg }
            }
            _ => return None,
        };
        Some((kid, key))
    }

    /// Whether this key may verify a token signed with `alg`: its type and
    /// curve fit, and its own `alg`, when it names one, is that one.
    fn fits(&self, alg: Alg) -> bool {
        let (family_fits, pinned) = match self {
            VerifyKey::Rsa { alg: pinned, .. } => (matches!(alg, Alg::Rs256 | Alg::Rs384 | Alg::Rs512), pinned),
            VerifyKey::Ec { curve: Curve::P256, alg: pinned, .. } => (alg == Alg::Es256, pinned),
            VerifyKey::Ec { curve: Curve::P384, alg: pinned, .. } => (alg == Alg::Es384, pinned),
        };
        family_fits && pinned.is_none_or(|p| p == alg)
    }
}

/// A token of the right shape, nothing verified yet.
pub struct Parsed {
    pub alg: Alg,
    pub kid: String,
    signing_input: String,
    signature: Vec<u8>,
    pub claims: Map<String, Value>,
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

fn json_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Three base64url parts, a JSON header naming an accepted `alg` and a
/// `kid`, a JSON object of claims. A header with `crit` is refused (no
/// extension is understood).
pub fn parse(token: &str) -> Result<Parsed, Denied> {
    if token.len() > MAX_JWT_BYTES {
        return Err(Denied::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Denied::Malformed);
    };
    let header = json_object(h).ok_or(Denied::Malformed)?;
    let claims = json_object(p).ok_or(Denied::Malformed)?;
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| Denied::Malformed)?;
    let alg = header.get("alg").and_then(Value::as_str).and_then(Alg::parse).ok_or(Denied::Algorithm)?;
    if header.contains_key("crit") {
        return Err(Denied::Malformed);
    }
    let kid = header.get("kid").and_then(Value::as_str).ok_or(Denied::UnknownKey)?.to_owned();
    Ok(Parsed { alg, kid, signing_input: format!("{h}.{p}"), signature, claims })
}

impl Parsed {
    pub fn verify_signature(&self, key: &VerifyKey) -> Result<(), Denied> {
        if !key.fits(self.alg) {
            return Err(Denied::KeyMismatch);
        }
        let msg = self.signing_input.as_bytes();
        let ok = match (key, self.alg) {
            (VerifyKey::Rsa { n, e, .. }, alg) => {
                let params = match alg {
                    Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    _ => &signature::RSA_PKCS1_2048_8192_SHA512,
                };
                RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.verify(params, msg, &self.signature).is_ok()
            }
            (VerifyKey::Ec { curve, point, .. }, _) => {
                let params = match curve {
                    Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                };
                UnparsedPublicKey::new(params, point).verify(msg, &self.signature).is_ok()
            }
        };
        ok.then_some(()).ok_or(Denied::Signature)
    }
}

/// What a verified token says about its workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub subject: String,
    pub jti: Option<String>,
    pub expires_at: Timestamp,
}

fn seconds(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
}

/// A claim's value as a bound claim compares it: a string as it is, a
/// number or a boolean as its JSON text; anything else matches nothing.
fn claim_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The claims against the rule at `now`: `iss` exact; `aud` is or contains
/// the audience; `exp` after and `nbf`, `iat` before `now` (with
/// [`LEEWAY_SECONDS`]); `exp − iat` at most [`MAX_LIFETIME_SECONDS`];
/// `sub` by the rule's match; every bound claim present and allowed.
pub fn check_claims(claims: &Map<String, Value>, rule: &OidcRule, now: Timestamp) -> Result<Verified, Denied> {
    if claims.get("iss").and_then(Value::as_str) != Some(rule.issuer.as_str()) {
        return Err(Denied::Issuer);
    }
    if !audience_holds(claims, &rule.audience) {
        return Err(Denied::Audience);
    }
    let expires_at = check_times(claims, now)?;
    let subject = claims.get("sub").and_then(Value::as_str).ok_or(Denied::Subject)?;
    if !rule.subject_match.matches(&rule.subject, subject) {
        return Err(Denied::Subject);
    }
    for (name, allowed) in &rule.bound_claims {
        let got = claims.get(name).and_then(claim_text).ok_or(Denied::BoundClaim)?;
        if !allowed.contains(&got) {
            return Err(Denied::BoundClaim);
        }
    }
    let jti = match claims.get("jti") {
        None => None,
        Some(Value::String(j)) if !j.is_empty() => Some(j.clone()),
        Some(_) => return Err(Denied::Malformed),
    };
    Ok(Verified { subject: subject.to_owned(), jti, expires_at })
}

/// Whether `aud` is or contains `audience`.
pub fn audience_holds(claims: &Map<String, Value>, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    }
}

/// The times at `now`: `exp` after and `nbf`, `iat` before it (with
/// [`LEEWAY_SECONDS`]), `exp − iat` at most [`MAX_LIFETIME_SECONDS`].
/// Answers the expiry.
pub fn check_times(claims: &Map<String, Value>, now: Timestamp) -> Result<Timestamp, Denied> {
    let now_s = now.seconds();
    let exp = seconds(claims, "exp").ok_or(Denied::Lifetime)?;
    if exp + LEEWAY_SECONDS <= now_s {
        return Err(Denied::Expired);
    }
    if seconds(claims, "nbf").is_some_and(|nbf| nbf - LEEWAY_SECONDS > now_s) {
        return Err(Denied::NotYetValid);
    }
    let iat = seconds(claims, "iat").ok_or(Denied::Lifetime)?;
    if iat - LEEWAY_SECONDS > now_s {
        return Err(Denied::IssuedInFuture);
    }
    if exp - iat > MAX_LIFETIME_SECONDS {
        return Err(Denied::Lifetime);
    }
    Ok(Timestamp::from_millis(exp.saturating_mul(1000)))
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! Signing keys for tests, made with aws-lc-rs.
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    pub struct EcSigner {
        pair: EcdsaKeyPair,
    }

    impl EcSigner {
        pub fn generate() -> Self {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
            Self { pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap() }
        }
        pub fn public(&self) -> VerifyKey {
            VerifyKey::Ec { curve: Curve::P256, point: self.pair.public_key().as_ref().to_vec(), alg: None }
        }
        pub fn sign(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let sig = self.pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::EcSigner;
    use super::*;
    use crate::identity::SubjectMatch;
    use serde_json::json;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_800_000_000;

    fn rule() -> OidcRule {
        OidcRule {
            issuer: "https://issuer.example".into(),
            audience: "ibyok:acme".into(),
            subject: "repo:acme/app:environment:production".into(),
            subject_match: SubjectMatch::Exact,
            bound_claims: BTreeMap::from([
                ("repository_id".to_owned(), vec!["81234567".to_owned()]),
                ("ref".to_owned(), vec!["refs/heads/main".to_owned(), "refs/heads/release".to_owned()]),
            ]),
        }
    }

    fn claims() -> Value {
        json!({"iss": "https://issuer.example", "aud": "ibyok:acme",
               "sub": "repo:acme/app:environment:production", "exp": NOW + 300, "iat": NOW - 10,
               "nbf": NOW - 10, "repository_id": "81234567", "ref": "refs/heads/main", "jti": "j-1"})
    }

    fn check(c: Value) -> Result<Verified, Denied> {
        check_claims(c.as_object().unwrap(), &rule(), Timestamp::from_millis(NOW * 1000))
    }

    fn with(mut c: Value, k: &str, v: Value) -> Value {
        c[k] = v;
        c
    }

    fn without(mut c: Value, k: &str) -> Value {
        c.as_object_mut().unwrap().remove(k);
        c
    }

    #[test]
    fn good_claims_pass_and_name_the_subject() {
        let v = check(claims()).unwrap();
        assert_eq!(v.subject, "repo:acme/app:environment:production");
        assert_eq!(v.jti.as_deref(), Some("j-1"));
        assert!(check(with(claims(), "aud", json!(["other", "ibyok:acme"]))).is_ok());
        assert!(check(with(claims(), "ref", json!("refs/heads/release"))).is_ok());
        assert!(check(without(claims(), "jti")).is_ok());
        assert!(check(without(claims(), "nbf")).is_ok());
        // Within the leeway.
        assert!(check(with(claims(), "exp", json!(NOW - 59))).is_ok());
        assert!(check(with(claims(), "iat", json!(NOW + 59))).is_ok());
    }

    #[test]
    fn claim_matrix_names_each_cause() {
        let cases = [
            (with(claims(), "iss", json!("https://issuer.example/")), Denied::Issuer),
            (without(claims(), "iss"), Denied::Issuer),
            (without(claims(), "aud"), Denied::Audience),
            (with(claims(), "aud", json!("ibyok:other")), Denied::Audience),
            (with(claims(), "aud", json!(["ibyok:other"])), Denied::Audience),
            (with(claims(), "exp", json!(NOW - 61)), Denied::Expired),
            (without(claims(), "exp"), Denied::Lifetime),
            (with(claims(), "nbf", json!(NOW + 61)), Denied::NotYetValid),
            (with(claims(), "iat", json!(NOW + 61)), Denied::IssuedInFuture),
            (without(claims(), "iat"), Denied::Lifetime),
            (with(with(claims(), "iat", json!(NOW - 10)), "exp", json!(NOW - 10 + 86_401)), Denied::Lifetime),
            (with(claims(), "sub", json!("repo:acme/app:environment:staging")), Denied::Subject),
            (without(claims(), "sub"), Denied::Subject),
            (without(claims(), "repository_id"), Denied::BoundClaim),
            (with(claims(), "repository_id", json!("99")), Denied::BoundClaim),
            (with(claims(), "ref", json!("refs/heads/dev")), Denied::BoundClaim),
            (with(claims(), "ref", json!(["refs/heads/main"])), Denied::BoundClaim),
            (with(claims(), "jti", json!(7)), Denied::Malformed),
        ];
        for (c, want) in cases {
            assert_eq!(check(c.clone()), Err(want), "{c}");
        }
    }

    #[test]
    fn a_numeric_bound_claim_compares_as_its_text() {
        assert!(check(with(claims(), "repository_id", json!(81234567))).is_ok());
    }

    #[test]
    fn signatures_verify_only_with_the_right_key_and_algorithm() {
        let signer = EcSigner::generate();
        let other = EcSigner::generate();
        let token = signer.sign(&json!({"alg": "ES256", "kid": "k1"}), &claims());
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.kid, "k1");
        assert_eq!(parsed.verify_signature(&signer.public()), Ok(()));
        assert_eq!(parsed.verify_signature(&other.public()), Err(Denied::Signature));
        // A key pinned to another algorithm, or an RSA key, does not fit.
        let VerifyKey::Ec { curve, point, .. } = signer.public() else { unreachable!() };
        let pinned = VerifyKey::Ec { curve, point: point.clone(), alg: Some(Alg::Es384) };
        assert_eq!(parsed.verify_signature(&pinned), Err(Denied::KeyMismatch));
        let p384 = VerifyKey::Ec { curve: Curve::P384, point, alg: None };
        assert_eq!(parsed.verify_signature(&p384), Err(Denied::KeyMismatch));
        let rsa = VerifyKey::Rsa { n: vec![1; 256], e: vec![1, 0, 1], alg: None };
        assert_eq!(parsed.verify_signature(&rsa), Err(Denied::KeyMismatch));
        // A tampered payload.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(with(claims(), "sub", json!("repo:evil/app")).to_string());
        parts[1] = &forged;
        let tampered = parse(&parts.join(".")).unwrap();
        assert_eq!(tampered.verify_signature(&signer.public()), Err(Denied::Signature));
    }

    #[test]
    fn shapes_and_algorithms_outside_the_list_are_refused() {
        let c = URL_SAFE_NO_PAD.encode(claims().to_string());
        let h = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let cases = [
            (format!("{}.{c}.", h(json!({"alg": "none", "kid": "k1"}))), Denied::Algorithm),
            (format!("{}.{c}.AAAA", h(json!({"alg": "HS256", "kid": "k1"}))), Denied::Algorithm),
            (format!("{}.{c}.AAAA", h(json!({"alg": "PS256", "kid": "k1"}))), Denied::Algorithm),
            (format!("{}.{c}.AAAA", h(json!({"kid": "k1"}))), Denied::Algorithm),
            (format!("{}.{c}.AAAA", h(json!({"alg": "ES256"}))), Denied::UnknownKey),
            (format!("{}.{c}.AAAA", h(json!({"alg": "ES256", "kid": "k1", "crit": ["x"]}))), Denied::Malformed),
            ("garbage".to_owned(), Denied::Malformed),
            ("a.b".to_owned(), Denied::Malformed),
            ("a.b.c.d".to_owned(), Denied::Malformed),
            (format!("{}.{c}.AA==", h(json!({"alg": "ES256", "kid": "k1"}))), Denied::Malformed),
            (format!("{}.bm90IGpzb24.AAAA", h(json!({"alg": "ES256", "kid": "k1"}))), Denied::Malformed),
            ("x".repeat(MAX_JWT_BYTES + 1), Denied::Malformed),
        ];
        for (token, want) in cases {
            assert_eq!(parse(&token).map(|_| ()).unwrap_err(), want, "{token:.80}");
        }
    }

    #[test]
    fn jwks_entries_of_other_kinds_are_skipped() {
        let signer = EcSigner::generate();
        let VerifyKey::Ec { point, .. } = signer.public() else { unreachable!() };
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..]);
        let ok = json!({"kty": "EC", "crv": "P-256", "kid": "a", "x": x, "y": y, "use": "sig", "alg": "ES256"});
        let (kid, key) = VerifyKey::from_jwk(ok.as_object().unwrap()).unwrap();
        assert_eq!(kid, "a");
        assert_eq!(key, VerifyKey::Ec { curve: Curve::P256, point, alg: Some(Alg::Es256) });
        for skipped in [
            json!({"kty": "EC", "crv": "P-256", "kid": "a", "x": x, "y": y, "use": "enc"}),
            json!({"kty": "EC", "crv": "P-521", "kid": "a", "x": x, "y": y}),
            json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
            json!({"kty": "oct", "kid": "a", "k": "c2VjcmV0"}),
            json!({"kty": "RSA", "kid": "a", "n": "AQAB", "e": "AQAB", "alg": "HS256"}),
        ] {
            assert!(VerifyKey::from_jwk(skipped.as_object().unwrap()).is_none(), "{skipped}");
        }
    }
}
