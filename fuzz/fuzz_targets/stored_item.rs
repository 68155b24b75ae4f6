//! The stored-item decoders `store::dynamo::key_from` and `token_from` over
//! attribute maps built from the input, and `envelope::open` over every key
//! that decodes.
//!
//! An input starts from an empty item, a well-formed key item (with a real
//! envelope sealed under the fuzzer's ids and value) or a well-formed token
//! item, then applies edits: set any attribute to any value (S, N, B, L, M,
//! SS, NS, BS, BOOL, NULL), remove one, or flip, cut or extend the bytes of a
//! binary one. Both decoders see every item. They must not panic; a key that
//! decodes must either open to exactly the sealed value (when the envelope
//! and the ids it is bound to are untouched) or fail cleanly.
#![no_main]

use arbitrary::Arbitrary;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use ibyok::envelope;
use ibyok::ids::{KeyId, TenantId};
use ibyok::kms::local::LocalKms;
use ibyok::kms::KeyContext;
use ibyok::secret::SecretValue;
use ibyok::store::dynamo::{key_from, tenant_from, token_from, Item};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;

const NAMES: [&str; 30] = [
    "keyId",
    "tenantId",
    "name",
    "llmType",
    "preview",
    "modeOverrides",
    "createdAt",
    "updatedAt",
    "retrievals",
    "ciphertext",
    "nonce",
    "wrappedKey",
    "lastUsedAt",
    "tokenId",
    "verifier",
    "scopes",
    "expiresAt",
    "keyIds",
    "allowedCidrs",
    "issuedBy",
    "ancestors",
    "revokedAt",
    "uses",
    "purgeShard",
    "purgeAt",
    "noticeShard",
    "noticeAt",
    "rateLimit",
    "readsPerMonth",
    "ttl",
];
const BINARY: [&str; 4] = ["ciphertext", "nonce", "wrappedKey", "verifier"];
/// What the envelope is bound to: a change to any of them must make `open` fail.
const SEALED: [&str; 5] = ["ciphertext", "nonce", "wrappedKey", "keyId", "tenantId"];
const MAX_DEPTH: usize = 4;

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Other(String),
}

impl Name {
    fn get(&self) -> String {
        match self {
            Name::Known(i) => NAMES[*i as usize % NAMES.len()].to_owned(),
            Name::Other(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Num {
    Int(i64),
    Unsigned(u64),
    Float(f64),
    Text(String),
}

impl Num {
    fn text(&self) -> String {
        match self {
            Num::Int(i) => i.to_string(),
            Num::Unsigned(u) => u.to_string(),
            Num::Float(f) => f.to_string(),
            Num::Text(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Str {
    Text(String),
    Scope(u8),
    Mode(bool),
    Env(u8),
    Cidr([u8; 4], u8),
    Cidr6([u16; 8], u8),
    KeyId,
    TenantId,
}

impl Str {
    fn text(&self) -> String {
        const SCOPES: [&str; 8] = [
            "keys:read",
            "keys:write",
            "tokens:read",
            "tokens:write",
            "settings:read",
            "settings:write",
            "usage:read",
            "admin",
        ];
        const ENVS: [&str; 5] = ["development", "staging", "production", "dev", "prod"];
        match self {
            Str::Text(s) => s.clone(),
            Str::Scope(i) => SCOPES[*i as usize % SCOPES.len()].to_owned(),
            Str::Mode(live) => if *live { "live" } else { "mock" }.to_owned(),
            Str::Env(i) => ENVS[*i as usize % ENVS.len()].to_owned(),
            Str::Cidr(a, p) => format!("{}.{}.{}.{}/{p}", a[0], a[1], a[2], a[3]),
            Str::Cidr6(a, p) => format!("{}/{p}", std::net::Ipv6Addr::from(*a)),
            Str::KeyId => KeyId::generate(&TenantId::generate()).to_string(),
            Str::TenantId => TenantId::generate().to_string(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Av {
    S(Str),
    N(Num),
    B(Vec<u8>),
    L(Vec<Av>),
    M(Vec<(Str, Av)>),
    Ss(Vec<Str>),
    Ns(Vec<Num>),
    Bs(Vec<Vec<u8>>),
    Bool(bool),
    Null(bool),
}

impl Av {
    fn build(&self, depth: usize) -> AttributeValue {
        let deeper = |v: &Av| if depth >= MAX_DEPTH { AttributeValue::Null(true) } else { v.build(depth + 1) };
        match self {
            Av::S(s) => AttributeValue::S(s.text()),
            Av::N(n) => AttributeValue::N(n.text()),
            Av::B(b) => AttributeValue::B(Blob::new(b.clone())),
            Av::L(l) => AttributeValue::L(l.iter().map(deeper).collect()),
            Av::M(m) => AttributeValue::M(m.iter().map(|(k, v)| (k.text(), deeper(v))).collect()),
            Av::Ss(l) => AttributeValue::Ss(l.iter().map(Str::text).collect()),
            Av::Ns(l) => AttributeValue::Ns(l.iter().map(Num::text).collect()),
            Av::Bs(l) => AttributeValue::Bs(l.iter().map(|b| Blob::new(b.clone())).collect()),
            Av::Bool(b) => AttributeValue::Bool(*b),
            Av::Null(b) => AttributeValue::Null(*b),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Set(Name, Av),
    Remove(Name),
    Flip { attr: u8, at: u16, xor: u8 },
    Cut { attr: u8, len: u16 },
    Extend { attr: u8, bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
enum Base {
    Empty,
    /// A key item as `DynamoStore` writes it.
    Key {
        name: String,
        llm_type: String,
        value: String,
        overrides: Vec<(Str, Str)>,
        times: [i32; 3],
    },
    /// A token item as `DynamoStore` writes it.
    Token {
        name: String,
        scopes: Vec<Str>,
        key_ids: Option<Vec<Str>>,
        cidrs: Option<Vec<Str>>,
        rate_limit: Option<i64>,
        times: [i32; 3],
    },
    /// A tenant item as `DynamoStore` writes it.
    Tenant {
        name: String,
        reads_per_month: Option<i64>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    base: Base,
    edits: Vec<Edit>,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("a runtime"))
}

fn kms() -> &'static LocalKms {
    static KMS: OnceLock<LocalKms> = OnceLock::new();
    KMS.get_or_init(LocalKms::ephemeral)
}

const T0: i64 = 1_795_703_653_000;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn b(v: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(v))
}
fn list(v: impl IntoIterator<Item = String>) -> AttributeValue {
    AttributeValue::L(v.into_iter().map(AttributeValue::S).collect())
}

/// The item, and the value sealed into it if it is a key item.
fn base_item(base: &Base) -> (Item, Option<String>) {
    match base {
        Base::Empty => (Item::new(), None),
        Base::Key { name, llm_type, value, overrides, times } => {
            let tenant = TenantId::generate();
            let key = KeyId::generate(&tenant);
            let ctx = KeyContext { tenant_id: tenant.clone(), key_id: key.clone() };
            let sealed = runtime()
                .block_on(envelope::seal(kms(), &ctx, &SecretValue::new(value.clone())))
                .expect("LocalKms seals anything");
            let item = Item::from([
                ("keyId".into(), s(key.as_str())),
                ("tenantId".into(), s(tenant.as_str())),
                ("name".into(), s(name)),
                ("llmType".into(), s(llm_type)),
                ("preview".into(), s("…")),
                (
                    "modeOverrides".into(),
                    AttributeValue::M(overrides.iter().map(|(e, m)| (e.text(), s(m.text()))).collect()),
                ),
                ("createdAt".into(), n(T0 + i64::from(times[0]))),
                ("updatedAt".into(), n(T0 + i64::from(times[1]))),
                ("retrievals".into(), n(times[2].unsigned_abs())),
                ("ciphertext".into(), b(&sealed.ciphertext)),
                ("nonce".into(), b(&sealed.nonce)),
                ("wrappedKey".into(), b(&sealed.wrapped_key)),
            ]);
            (item, Some(value.clone()))
        }
        Base::Tenant { name, reads_per_month } => {
            let mut item = Item::from([
                ("tenantId".into(), s(TenantId::generate().as_str())),
                ("name".into(), s(name)),
                ("createdAt".into(), n(T0)),
            ]);
            if let Some(q) = reads_per_month {
                item.insert("readsPerMonth".into(), n(q));
            }
            (item, None)
        }
        Base::Token { name, scopes, key_ids, cidrs, rate_limit, times } => {
            let parsed = ibyok::token::ParsedToken::generate();
            let mut item = Item::from([
                ("tokenId".into(), s(parsed.id().as_str())),
                ("tenantId".into(), s(TenantId::generate().as_str())),
                ("verifier".into(), b(&parsed.verifier())),
                ("name".into(), s(name)),
                ("scopes".into(), list(scopes.iter().map(Str::text))),
                ("createdAt".into(), n(T0 + i64::from(times[0]))),
                ("expiresAt".into(), n(T0 + i64::from(times[1]))),
                ("ancestors".into(), list([])),
                ("uses".into(), n(times[2].unsigned_abs())),
            ]);
            if let Some(k) = key_ids {
                item.insert("keyIds".into(), list(k.iter().map(Str::text)));
            }
            if let Some(c) = cidrs {
                item.insert("allowedCidrs".into(), list(c.iter().map(Str::text)));
            }
            if let Some(r) = rate_limit {
                item.insert("rateLimit".into(), n(r));
            }
            (item, None)
        }
    }
}

fn blob_mut(item: &mut Item, attr: u8) -> Option<(&'static str, Vec<u8>)> {
    let name = BINARY[attr as usize % BINARY.len()];
    match item.get(name) {
        Some(AttributeValue::B(blob)) => Some((name, blob.as_ref().to_vec())),
        _ => None,
    }
}

fuzz_target!(|input: Input| {
    let (mut item, sealed_value) = base_item(&input.base);
    let original: HashMap<&str, Option<AttributeValue>> = SEALED.iter().map(|k| (*k, item.get(*k).cloned())).collect();
    for edit in input.edits.iter().take(32) {
        match edit {
            Edit::Set(name, v) => {
                item.insert(name.get(), v.build(0));
            }
            Edit::Remove(name) => {
                item.remove(&name.get());
            }
            Edit::Flip { attr, at, xor } => {
                if let Some((name, mut bytes)) = blob_mut(&mut item, *attr) {
                    if !bytes.is_empty() {
                        let i = *at as usize % bytes.len();
                        bytes[i] ^= xor;
                    }
                    item.insert(name.into(), b(&bytes));
                }
            }
            Edit::Cut { attr, len } => {
                if let Some((name, mut bytes)) = blob_mut(&mut item, *attr) {
                    bytes.truncate(*len as usize);
                    item.insert(name.into(), b(&bytes));
                }
            }
            Edit::Extend { attr, bytes: more } => {
                if let Some((name, mut bytes)) = blob_mut(&mut item, *attr) {
                    bytes.extend_from_slice(more);
                    item.insert(name.into(), b(&bytes));
                }
            }
        }
    }

    if let Ok(token) = token_from(&item) {
        // A decoded token keeps what the item said.
        assert_eq!(Some(token.token_id.as_str()), item.get("tokenId").and_then(|v| v.as_s().ok()).map(String::as_str));
        // A limit is a positive number of requests a minute, or none.
        assert!(token.grant.rate_limit.is_none_or(|r| r > 0), "a decoded rate limit of 0");
        assert_eq!(token.grant.rate_limit.is_some(), item.contains_key("rateLimit"), "a rate limit made up or lost");
        let _ = format!("{token:?}");
    }
    if let Ok(tenant) = tenant_from(&item) {
        assert_eq!(tenant.reads_per_month.is_some(), item.contains_key("readsPerMonth"), "a quota made up or lost");
    }

    let Ok(record) = key_from(&item) else { return };
    assert_eq!(record.envelope.nonce.len(), ibyok::envelope::NONCE_LEN);
    let _ = format!("{record:?}");
    let ctx = KeyContext { tenant_id: record.tenant_id.clone(), key_id: record.key_id.clone() };
    let untouched = sealed_value.is_some() && SEALED.iter().all(|k| original[k].as_ref() == item.get(*k));
    let opened = runtime().block_on(envelope::open(kms(), &ctx, &record.envelope));
    match (&opened, &sealed_value) {
        (Ok(v), Some(sealed)) => {
            assert!(untouched, "an envelope opened after its bytes or its ids were changed");
            assert_eq!(v.expose_value(), sealed, "opened to another value");
        }
        (Ok(_), None) => panic!("an envelope the fuzzer made up opened"),
        (Err(e), _) => {
            assert!(!untouched, "an untouched envelope failed to open: {e}");
            let _ = e.to_string();
        }
    }
    // The same envelope under another key's context never opens.
    // (`KeyId::generate` slices the tag out of a well-formed tenant id; a
    // stored one may be any string.)
    let tenant = TenantId::parse(record.tenant_id.as_str()).unwrap_or_else(TenantId::generate);
    let moved = KeyContext { key_id: KeyId::generate(&tenant), ..ctx };
    assert!(runtime().block_on(envelope::open(kms(), &moved, &record.envelope)).is_err());
});
