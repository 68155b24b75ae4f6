//! Tokens: the wire format, its checksum, the stored hash, scopes, and the
//! rules by which one token may issue another.
//!
//! Format: `ibyok_` + 32 random base62 characters + 6 base62 characters of
//! CRC-32 (IEEE) over everything before them. The id (`tok_…`) and the stored
//! verifier are two domain-separated SHA-256 digests of the whole token: the
//! id is what the store is keyed by, so the read path finds a token with one
//! consistent `GetItem`; the verifier is compared in constant time.

use crate::clock::Timestamp;
use crate::ids::{base62_of_bytes, is_base62, random_base62, KeyId, TokenId};
use crate::secret::TokenSecret;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use subtle::ConstantTimeEq;

pub const PREFIX: &str = "ibyok_";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
pub const TOKEN_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;

/// The checksum of a token body: CRC-32 (IEEE), base62, six characters.
pub fn checksum(body: &str) -> String {
    base62_of_bytes(&crc32fast::hash(body.as_bytes()).to_be_bytes(), CHECKSUM_LEN)
}

/// A token whose shape and checksum are right. Nothing about it has been
/// looked up yet.
pub struct ParsedToken {
    secret: TokenSecret,
    id: TokenId,
    verifier: [u8; 32],
}

impl fmt::Debug for ParsedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedToken").field("id", &self.id).finish_non_exhaustive()
    }
}

impl ParsedToken {
    /// Mints a new random token.
    pub fn generate() -> Self {
        let body = format!("{PREFIX}{}", random_base62(RANDOM_LEN));
        let sum = checksum(&body);
        Self::from_valid(TokenSecret::new(body + &sum))
    }

    /// Checks shape and checksum without touching any store.
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.len() != TOKEN_LEN || !raw.starts_with(PREFIX) {
            return None;
        }
        let rest = &raw[PREFIX.len()..];
        if !is_base62(rest) {
            return None;
        }
        let (body, sum) = raw.split_at(PREFIX.len() + RANDOM_LEN);
        if checksum(body).as_bytes().ct_eq(sum.as_bytes()).unwrap_u8() != 1 {
            return None;
        }
        Some(Self::from_valid(TokenSecret::new(raw.to_owned())))
    }

    fn from_valid(secret: TokenSecret) -> Self {
        let id_digest = Sha256::new()
            .chain_update(b"ibyok:token-id:v1\0")
            .chain_update(secret.expose_token().as_bytes())
            .finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&id_digest[..16]);
        let verifier: [u8; 32] = Sha256::new()
            .chain_update(b"ibyok:token-verifier:v1\0")
            .chain_update(secret.expose_token().as_bytes())
            .finalize()
            .into();
        Self { id: TokenId::from_digest(&first), verifier, secret }
    }

    pub fn id(&self) -> &TokenId {
        &self.id
    }
    /// The hash that is stored; never the token itself.
    pub fn verifier(&self) -> [u8; 32] {
        self.verifier
    }
    pub fn secret(&self) -> &TokenSecret {
        &self.secret
    }
    /// Constant-time comparison against a stored verifier.
    pub fn matches(&self, stored: &[u8]) -> bool {
        stored.len() == 32 && self.verifier.ct_eq(stored).unwrap_u8() == 1
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "keys:read")]
    KeysRead,
    #[serde(rename = "keys:write")]
    KeysWrite,
    #[serde(rename = "tokens:read")]
    TokensRead,
    #[serde(rename = "tokens:write")]
    TokensWrite,
    #[serde(rename = "settings:read")]
    SettingsRead,
    #[serde(rename = "settings:write")]
    SettingsWrite,
    #[serde(rename = "usage:read")]
    UsageRead,
    /// Key metadata and versions, never a value (`keys:read` implies it).
    #[serde(rename = "keys:list")]
    KeysList,
    /// The tenant's members (people) and their roles.
    #[serde(rename = "members:read")]
    MembersRead,
    #[serde(rename = "members:write")]
    MembersWrite,
}

impl Scope {
    pub const ALL: [Scope; 10] = [
        Scope::KeysRead,
        Scope::KeysWrite,
        Scope::TokensRead,
        Scope::TokensWrite,
        Scope::SettingsRead,
        Scope::SettingsWrite,
        Scope::UsageRead,
        Scope::KeysList,
        Scope::MembersRead,
        Scope::MembersWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::KeysRead => "keys:read",
            Scope::KeysWrite => "keys:write",
            Scope::TokensRead => "tokens:read",
            Scope::TokensWrite => "tokens:write",
            Scope::SettingsRead => "settings:read",
            Scope::SettingsWrite => "settings:write",
            Scope::UsageRead => "usage:read",
            Scope::KeysList => "keys:list",
            Scope::MembersRead => "members:read",
            Scope::MembersWrite => "members:write",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|sc| sc.as_str() == s)
    }

    /// The scopes this one implies: a write scope its read scope, and
    /// `keys:read` (so `keys:write` too) `keys:list`.
    fn implied(self) -> &'static [Scope] {
        match self {
            Scope::KeysWrite => &[Scope::KeysRead, Scope::KeysList],
            Scope::KeysRead => &[Scope::KeysList],
            Scope::TokensWrite => &[Scope::TokensRead],
            Scope::SettingsWrite => &[Scope::SettingsRead],
            Scope::MembersWrite => &[Scope::MembersRead],
            _ => &[],
        }
    }
}

/// A set of scopes as granted (what was asked for, in canonical order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    pub fn all() -> Self {
        Self(Scope::ALL.into_iter().collect())
    }
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Whether the set grants `scope`, a `:write` counting as its `:read`
    /// and `keys:read` as `keys:list`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.0.contains(&scope) || self.0.iter().any(|s| s.implied().contains(&scope))
    }
    /// Whether every scope of `other` is granted by `self`.
    pub fn covers(&self, other: &Scopes) -> bool {
        other.iter().all(|s| self.allows(s))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// What a token may do, as far as the issuing rules are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub scopes: Scopes,
    pub expires_at: Timestamp,
    pub key_ids: Option<Vec<KeyId>>,
    pub allowed_cidrs: Option<Vec<IpNet>>,
    /// Requests a minute (fixed UTC minutes), `None` when unlimited.
    pub rate_limit: Option<u32>,
}

impl Grant {
    /// Half of the live-token rule ([`crate::store::TokenRecord::is_live`]).
    pub fn unexpired_at(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }
    pub fn allows_key(&self, key: &KeyId) -> bool {
        self.key_ids.as_ref().is_none_or(|ids| ids.contains(key))
    }
    pub fn allows_source(&self, ip: Option<IpAddr>) -> bool {
        match (&self.allowed_cidrs, ip) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(nets), Some(ip)) => nets.iter().any(|n| n.contains(&ip)),
        }
    }
}

/// What a `POST /tokens` asks for, after its fields were validated.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    pub scopes: Scopes,
    pub expires_in_seconds: i64,
    pub key_ids: Option<Vec<KeyId>>,
    pub allowed_cidrs: Option<Vec<IpNet>>,
    pub rate_limit: Option<u32>,
}

/// Why an issue request asks for more than its caller holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escalation {
    Scopes,
    KeyIds,
    AllowedCidrs,
    RateLimit,
}

impl Escalation {
    pub fn message(self) -> &'static str {
        match self {
            Escalation::Scopes => "scopes: a token can only grant scopes it holds",
            Escalation::KeyIds => "keyIds: a token restricted to keyIds can only grant keys from its own list",
            Escalation::AllowedCidrs => {
                "allowedCidrs: each CIDR must lie inside one of the issuing token's allowedCidrs"
            }
            Escalation::RateLimit => "rateLimit: a token can only grant a rate limit up to its own",
        }
    }
}

fn net_within(inner: &IpNet, outer: &IpNet) -> bool {
    outer.contains(inner)
}

/// The rule that a token can only hand out what it holds: the child's grant,
/// or which part of the request escalates.
pub fn derive_child(parent: &Grant, req: &IssueRequest, now: Timestamp) -> Result<Grant, Escalation> {
    if !parent.scopes.covers(&req.scopes) {
        return Err(Escalation::Scopes);
    }
    let key_ids = match (&parent.key_ids, &req.key_ids) {
        (None, asked) => asked.clone(),
        (Some(mine), None) => Some(mine.clone()),
        (Some(mine), Some(asked)) => {
            if asked.iter().any(|k| !mine.contains(k)) {
                return Err(Escalation::KeyIds);
            }
            Some(asked.clone())
        }
    };
    let allowed_cidrs = match (&parent.allowed_cidrs, &req.allowed_cidrs) {
        (None, asked) => asked.clone(),
        (Some(mine), None) => Some(mine.clone()),
        (Some(mine), Some(asked)) => {
            if asked.iter().any(|n| !mine.iter().any(|m| net_within(n, m))) {
                return Err(Escalation::AllowedCidrs);
            }
            Some(asked.clone())
        }
    };
    // A limited issuer hands its limit down; a child may ask for less.
    let rate_limit = match (parent.rate_limit, req.rate_limit) {
        (None, asked) => asked,
        (Some(mine), None) => Some(mine),
        (Some(mine), Some(asked)) if asked > mine => return Err(Escalation::RateLimit),
        (Some(_), Some(asked)) => Some(asked),
    };
    let expires_at = now.plus_seconds(req.expires_in_seconds).min(parent.expires_at);
    Ok(Grant { scopes: req.scopes.clone(), expires_at, key_ids, allowed_cidrs, rate_limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_have_the_contract_shape() {
        let t = ParsedToken::generate();
        let raw = t.secret().expose_token().to_owned();
        assert_eq!(raw.len(), 44);
        assert!(raw.starts_with("ibyok_"));
        let again = ParsedToken::parse(&raw).expect("parses");
        assert_eq!(again.id(), t.id());
        assert!(again.matches(&t.verifier()));
    }

    #[test]
    fn checksum_is_crc32_in_base62() {
        // CRC-32 of "ibyok_" + 32 'a' computed independently: 0x… as base62.
        let body = format!("ibyok_{}", "a".repeat(32));
        let crc = crc32fast::hash(body.as_bytes());
        let mut n = u64::from(crc);
        let mut s = Vec::new();
        for _ in 0..6 {
            s.push(crate::ids::BASE62[(n % 62) as usize]);
            n /= 62;
        }
        s.reverse();
        assert_eq!(checksum(&body), String::from_utf8(s).unwrap());
    }

    #[test]
    fn typos_and_truncations_are_refused() {
        let raw = ParsedToken::generate().secret().expose_token().to_owned();
        assert!(ParsedToken::parse(&raw[..raw.len() - 1]).is_none());
        let mut flipped = raw.clone().into_bytes();
        flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
        assert!(ParsedToken::parse(std::str::from_utf8(&flipped).unwrap()).is_none());
        assert!(ParsedToken::parse(&raw.replace("ibyok_", "ibyoK_")).is_none());
        assert!(ParsedToken::parse("").is_none());
        assert!(ParsedToken::parse(&format!("{raw}x")).is_none());
        assert!(ParsedToken::parse("ibyok_ééééééééééééééééééé").is_none());
    }

    #[test]
    fn verifier_mismatch_is_refused() {
        let a = ParsedToken::generate();
        let b = ParsedToken::generate();
        assert!(!a.matches(&b.verifier()));
        assert!(!a.matches(&a.verifier()[..31]));
    }

    fn scopes(list: &[Scope]) -> Scopes {
        list.iter().copied().collect()
    }

    #[test]
    fn keys_read_implies_keys_list_never_the_reverse() {
        assert!(scopes(&[Scope::KeysRead]).allows(Scope::KeysList));
        assert!(scopes(&[Scope::KeysWrite]).allows(Scope::KeysList));
        assert!(!scopes(&[Scope::KeysList]).allows(Scope::KeysRead));
        assert!(scopes(&[Scope::KeysRead]).covers(&scopes(&[Scope::KeysList])));
        assert!(!scopes(&[Scope::KeysList]).covers(&scopes(&[Scope::KeysRead])));
    }

    #[test]
    fn write_implies_read_of_the_same_resource_only() {
        let s = scopes(&[Scope::KeysWrite]);
        assert!(s.allows(Scope::KeysRead));
        assert!(s.allows(Scope::KeysWrite));
        assert!(!s.allows(Scope::TokensRead));
        assert!(!scopes(&[Scope::KeysRead]).allows(Scope::KeysWrite));
        assert!(!scopes(&[Scope::UsageRead]).allows(Scope::SettingsRead));
    }

    fn grant(sc: &[Scope]) -> Grant {
        Grant {
            scopes: scopes(sc),
            expires_at: Timestamp::from_millis(10_000_000),
            key_ids: None,
            allowed_cidrs: None,
            rate_limit: None,
        }
    }

    fn ask(sc: &[Scope]) -> IssueRequest {
        IssueRequest {
            scopes: scopes(sc),
            expires_in_seconds: 3600,
            key_ids: None,
            allowed_cidrs: None,
            rate_limit: None,
        }
    }

    #[test]
    fn issuing_rules_table() {
        let now = Timestamp::from_millis(0);
        let parent = grant(&[Scope::KeysWrite, Scope::TokensWrite]);
        // (asked scopes, expected outcome)
        let cases: &[(&[Scope], Result<(), Escalation>)] = &[
            (&[Scope::KeysRead], Ok(())),
            (&[Scope::KeysWrite, Scope::TokensRead], Ok(())),
            (&[Scope::SettingsRead], Err(Escalation::Scopes)),
            (&[Scope::KeysRead, Scope::UsageRead], Err(Escalation::Scopes)),
        ];
        for (asked, expected) in cases {
            let got = derive_child(&parent, &ask(asked), now).map(|_| ());
            assert_eq!(&got, expected, "{asked:?}");
        }
    }

    #[test]
    fn expiry_is_capped_at_the_parent() {
        let parent = grant(&[Scope::KeysRead]);
        let mut req = ask(&[Scope::KeysRead]);
        req.expires_in_seconds = 31_536_000;
        let child = derive_child(&parent, &req, Timestamp::from_millis(0)).unwrap();
        assert_eq!(child.expires_at, parent.expires_at);
    }

    #[test]
    fn key_ids_inherit_or_must_be_a_subset() {
        let t = crate::ids::TenantId::generate();
        let (a, b) = (KeyId::generate(&t), KeyId::generate(&t));
        let mut parent = grant(&[Scope::KeysRead]);
        parent.key_ids = Some(vec![a.clone()]);
        let now = Timestamp::from_millis(0);
        let inherited = derive_child(&parent, &ask(&[Scope::KeysRead]), now).unwrap();
        assert_eq!(inherited.key_ids, Some(vec![a.clone()]));
        let mut wider = ask(&[Scope::KeysRead]);
        wider.key_ids = Some(vec![a, b]);
        assert_eq!(derive_child(&parent, &wider, now), Err(Escalation::KeyIds));
    }

    #[test]
    fn cidrs_inherit_or_must_nest() {
        let mut parent = grant(&[Scope::KeysRead]);
        parent.allowed_cidrs = Some(vec!["10.0.0.0/8".parse().unwrap()]);
        let now = Timestamp::from_millis(0);
        let mut narrower = ask(&[Scope::KeysRead]);
        narrower.allowed_cidrs = Some(vec!["10.1.0.0/16".parse().unwrap()]);
        assert!(derive_child(&parent, &narrower, now).is_ok());
        let mut wider = ask(&[Scope::KeysRead]);
        wider.allowed_cidrs = Some(vec!["0.0.0.0/0".parse().unwrap()]);
        assert_eq!(derive_child(&parent, &wider, now), Err(Escalation::AllowedCidrs));
        let inherited = derive_child(&parent, &ask(&[Scope::KeysRead]), now).unwrap();
        assert_eq!(inherited.allowed_cidrs, parent.allowed_cidrs);
    }

    #[test]
    fn rate_limits_inherit_or_must_not_exceed_the_issuer() {
        let now = Timestamp::from_millis(0);
        let mut parent = grant(&[Scope::KeysRead]);
        let mut asked = ask(&[Scope::KeysRead]);
        asked.rate_limit = Some(500);
        // Unlimited issuer: the child gets what it asks for, or nothing.
        assert_eq!(derive_child(&parent, &asked, now).unwrap().rate_limit, Some(500));
        assert_eq!(derive_child(&parent, &ask(&[Scope::KeysRead]), now).unwrap().rate_limit, None);
        parent.rate_limit = Some(100);
        assert_eq!(derive_child(&parent, &ask(&[Scope::KeysRead]), now).unwrap().rate_limit, Some(100));
        assert_eq!(derive_child(&parent, &asked, now), Err(Escalation::RateLimit));
        asked.rate_limit = Some(100);
        assert_eq!(derive_child(&parent, &asked, now).unwrap().rate_limit, Some(100));
        asked.rate_limit = Some(1);
        assert_eq!(derive_child(&parent, &asked, now).unwrap().rate_limit, Some(1));
    }

    #[test]
    fn source_address_checks() {
        let mut g = grant(&[Scope::KeysRead]);
        assert!(g.allows_source(None));
        g.allowed_cidrs = Some(vec!["203.0.113.0/24".parse().unwrap(), "2001:db8::/32".parse().unwrap()]);
        assert!(g.allows_source(Some("203.0.113.9".parse().unwrap())));
        assert!(g.allows_source(Some("2001:db8::1".parse().unwrap())));
        assert!(!g.allows_source(Some("198.51.100.1".parse().unwrap())));
        assert!(!g.allows_source(None));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::ids::TenantId;
    use proptest::prelude::*;

    fn scopes() -> impl Strategy<Value = Scopes> {
        proptest::sample::subsequence(Scope::ALL.to_vec(), 0..=Scope::ALL.len()).prop_map(|v| v.into_iter().collect())
    }

    fn nets() -> impl Strategy<Value = Option<Vec<IpNet>>> {
        let net = (any::<[u8; 4]>(), 0u8..=32)
            .prop_map(|(a, p)| IpNet::from(ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(a), p).unwrap()).trunc());
        proptest::option::of(proptest::collection::vec(net, 1..4))
    }

    fn keys(pool: Vec<KeyId>) -> impl Strategy<Value = Option<Vec<KeyId>>> {
        proptest::option::of(proptest::sample::subsequence(pool, 1..=4))
    }

    fn pool() -> Vec<KeyId> {
        let t = TenantId::generate();
        (0..6).map(|_| KeyId::generate(&t)).collect()
    }

    proptest! {
        #[test]
        fn a_child_never_holds_more_than_its_parent(
            p_scopes in scopes(), r_scopes in scopes(),
            p_nets in nets(), r_nets in nets(),
            (p_keys, r_keys) in { let p = pool(); (keys(p.clone()), keys(p)) },
            p_exp in 0i64..1_000_000, r_in in 60i64..31_536_000,
            p_rate in proptest::option::of(1u32..=100_000), r_rate in proptest::option::of(1u32..=100_000),
        ) {
            let parent = Grant { scopes: p_scopes, expires_at: Timestamp::from_millis(p_exp * 1000), key_ids: p_keys, allowed_cidrs: p_nets, rate_limit: p_rate };
            let req = IssueRequest { scopes: r_scopes, expires_in_seconds: r_in, key_ids: r_keys, allowed_cidrs: r_nets, rate_limit: r_rate };
            if let Ok(child) = derive_child(&parent, &req, Timestamp::from_millis(0)) {
                prop_assert!(parent.scopes.covers(&child.scopes));
                prop_assert!(child.expires_at <= parent.expires_at);
                if let Some(mine) = parent.rate_limit {
                    prop_assert!(child.rate_limit.is_some_and(|theirs| theirs <= mine), "a limited parent's child is limited as much");
                }
                if let Some(mine) = &parent.key_ids {
                    let theirs = child.key_ids.as_ref().expect("a restricted parent's child is restricted");
                    prop_assert!(theirs.iter().all(|k| mine.contains(k)));
                }
                if let Some(mine) = &parent.allowed_cidrs {
                    let theirs = child.allowed_cidrs.as_ref().expect("a bound parent's child is bound");
                    prop_assert!(theirs.iter().all(|n| mine.iter().any(|m| m.contains(n))));
                }
                // Whatever the child may reach, the parent may too.
                for ip in [[10, 0, 0, 1], [192, 168, 1, 1], [203, 0, 113, 9]] {
                    let ip = std::net::IpAddr::from(ip);
                    prop_assert!(!child.allows_source(Some(ip)) || parent.allows_source(Some(ip)));
                }
            } else {
                // Refused only when something asked for exceeds the parent.
                let scopes_ok = parent.scopes.covers(&req.scopes);
                let keys_ok = match (&parent.key_ids, &req.key_ids) {
                    (Some(m), Some(a)) => a.iter().all(|k| m.contains(k)),
                    _ => true,
                };
                let nets_ok = match (&parent.allowed_cidrs, &req.allowed_cidrs) {
                    (Some(m), Some(a)) => a.iter().all(|n| m.iter().any(|o| o.contains(n))),
                    _ => true,
                };
                let rate_ok = match (parent.rate_limit, req.rate_limit) {
                    (Some(m), Some(a)) => a <= m,
                    _ => true,
                };
                prop_assert!(!(scopes_ok && keys_ok && nets_ok && rate_ok));
            }
        }

        #[test]
        fn a_write_scope_always_grants_its_read(s in scopes()) {
            for (w, r) in [(Scope::KeysWrite, Scope::KeysRead), (Scope::TokensWrite, Scope::TokensRead), (Scope::SettingsWrite, Scope::SettingsRead)] {
                prop_assert!(!s.allows(w) || s.allows(r));
            }
            prop_assert!(s.covers(&s));
        }

        #[test]
        fn any_single_character_change_breaks_the_checksum(pos in 6usize..44, c in "[0-9A-Za-z]") {
            let raw = ParsedToken::generate().secret().expose_token().to_owned();
            let mut bytes = raw.clone().into_bytes();
            bytes[pos] = c.as_bytes()[0];
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(ParsedToken::parse(&changed).is_some(), changed == raw);
        }

        #[test]
        fn parsing_arbitrary_input_never_panics(s in "\\PC{0,60}") {
            let _ = ParsedToken::parse(&s);
            let _ = ParsedToken::parse(&format!("ibyok_{s}"));
        }
    }
}
