//! The stored-item decoders `store::dynamo::key_from` and `token_from` over
//! attribute maps built from the input, and `envelope::open` over every key
//! that decodes.
//!
//! An input starts from an empty item, a well-formed key item (with real
//! envelopes sealed under the fuzzer's ids and values: the earlier layout's
//! single value, or a versioned item with a previous and a pending version
//! beside the current one) or a well-formed token item, then applies edits:
//! set any attribute to any value (S, N, B, L, M, SS, NS, BS, BOOL, NULL),
//! remove one, or flip, cut or extend the bytes of a binary one (inside the
//! `previous` and `pending` maps too). Both decoders see every item. They
//! must not panic; every version of a key that decodes must either open to
//! exactly the value sealed as that version (when its envelope, its number
//! and the ids it is bound to are untouched) or fail cleanly.
#![no_main]

use arbitrary::Arbitrary;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use ibyok::envelope;
use ibyok::envelope::Envelope;
use ibyok::ids::{KeyId, TenantId};
use ibyok::kms::local::LocalKms;
use ibyok::kms::KeyContext;
use ibyok::secret::SecretValue;
use ibyok::store::dynamo::{key_from, tenant_from, token_from, Item};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;

const NAMES: [&str; 38] = [
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
    "version",
    "versionCreatedAt",
    "lastVersion",
    "previous",
    "pending",
    "retireShard",
    "retireAt",
    "retiresAt",
];
/// Binary attributes to flip, cut or extend; `map/attr` inside a version map.
const BINARY: [&str; 9] = [
    "ciphertext",
    "nonce",
    "wrappedKey",
    "verifier",
    "previous/ciphertext",
    "previous/nonce",
    "previous/wrappedKey",
    "pending/ciphertext",
    "pending/wrappedKey",
];
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
        /// 0: the earlier layout (one value, version 1); 1: version 2
        /// current, 1 previous; 2: version 3 current, 2 previous, 4 pending.
        versions: u8,
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

/// A version sealed into the base item: its number, envelope and value.
struct Sealed {
    number: u64,
    envelope: Envelope,
    value: String,
}

fn seal(tenant: &TenantId, key: &KeyId, number: u64, value: String) -> Sealed {
    let ctx = KeyContext::new(tenant, key, number);
    let envelope = runtime()
        .block_on(envelope::seal(kms(), &ctx, &SecretValue::new(value.clone())))
        .expect("LocalKms seals anything");
    Sealed { number, envelope, value }
}

/// A version map as `DynamoStore` writes it.
fn version_map(v: &Sealed, retires_at: Option<i64>) -> AttributeValue {
    let mut m = Item::from([
        ("version".into(), n(v.number)),
        ("createdAt".into(), n(T0)),
        ("preview".into(), s("…")),
        ("ciphertext".into(), b(&v.envelope.ciphertext)),
        ("nonce".into(), b(&v.envelope.nonce)),
        ("wrappedKey".into(), b(&v.envelope.wrapped_key)),
    ]);
    if let Some(r) = retires_at {
        m.insert("retiresAt".into(), n(r));
    }
    AttributeValue::M(m)
}

/// The item, and the versions sealed into it if it is a key item.
fn base_item(base: &Base) -> (Item, Vec<Sealed>) {
    match base {
        Base::Empty => (Item::new(), Vec::new()),
        Base::Key { name, llm_type, value, overrides, times, versions } => {
            let tenant = TenantId::generate();
            let key = KeyId::generate(&tenant);
            let current_number = match versions % 3 {
                0 => 1,
                1 => 2,
                _ => 3,
            };
            let current = seal(&tenant, &key, current_number, value.clone());
            let mut item = Item::from([
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
                ("ciphertext".into(), b(&current.envelope.ciphertext)),
                ("nonce".into(), b(&current.envelope.nonce)),
                ("wrappedKey".into(), b(&current.envelope.wrapped_key)),
            ]);
            let mut sealed = vec![current];
            if versions % 3 != 0 {
                item.insert("version".into(), n(current_number));
                item.insert("versionCreatedAt".into(), n(T0));
                let previous = seal(&tenant, &key, current_number - 1, format!("{value}-previous"));
                item.insert("previous".into(), version_map(&previous, Some(T0 + 3_600_000)));
                item.insert("retireShard".into(), s("0"));
                item.insert("retireAt".into(), n(T0 / 1000 + 3600));
                sealed.push(previous);
                let mut last = current_number;
                if versions % 3 == 2 {
                    let pending = seal(&tenant, &key, current_number + 1, format!("{value}-pending"));
                    item.insert("pending".into(), version_map(&pending, None));
                    last = pending.number;
                    sealed.push(pending);
                }
                item.insert("lastVersion".into(), n(last));
            }
            (item, sealed)
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
            (item, Vec::new())
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
            (item, Vec::new())
        }
    }
}

/// The bytes of a binary attribute (top level, or `map/attr`).
fn blob_mut(item: &mut Item, attr: u8) -> Option<(&'static str, Vec<u8>)> {
    let name = BINARY[attr as usize % BINARY.len()];
    let found = match name.split_once('/') {
        None => item.get(name),
        Some((map, inner)) => item.get(map).and_then(|m| m.as_m().ok()).and_then(|m| m.get(inner)),
    };
    match found {
        Some(AttributeValue::B(blob)) => Some((name, blob.as_ref().to_vec())),
        _ => None,
    }
}

fn set_blob(item: &mut Item, name: &str, bytes: &[u8]) {
    match name.split_once('/') {
        None => {
            item.insert(name.into(), b(bytes));
        }
        Some((map, inner)) => {
            if let Some(AttributeValue::M(m)) = item.get_mut(map) {
                m.insert(inner.into(), b(bytes));
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let (mut item, sealed) = base_item(&input.base);
    let ids: HashMap<&str, Option<AttributeValue>> =
        ["keyId", "tenantId"].iter().map(|k| (*k, item.get(*k).cloned())).collect();
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
                    set_blob(&mut item, name, &bytes);
                }
            }
            Edit::Cut { attr, len } => {
                if let Some((name, mut bytes)) = blob_mut(&mut item, *attr) {
                    bytes.truncate(*len as usize);
                    set_blob(&mut item, name, &bytes);
                }
            }
            Edit::Extend { attr, bytes: more } => {
                if let Some((name, mut bytes)) = blob_mut(&mut item, *attr) {
                    bytes.extend_from_slice(more);
                    set_blob(&mut item, name, &bytes);
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
    let _ = format!("{record:?}");
    let ids_untouched = ["keyId", "tenantId"].iter().all(|k| ids[k].as_ref() == item.get(*k));
    let tenant = TenantId::parse(record.tenant_id.as_str()).unwrap_or_else(TenantId::generate);
    let versions = [Some(&record.current), record.previous.as_ref(), record.pending.as_ref()];
    for v in versions.into_iter().flatten() {
        assert_eq!(v.envelope.nonce.len(), ibyok::envelope::NONCE_LEN);
        assert!(v.number >= 1 && v.number <= record.last_version, "version {} of {}", v.number, record.last_version);
        let ctx = KeyContext::new(&record.tenant_id, &record.key_id, v.number);
        // Untouched: this very envelope, sealed as this very number, under
        // the ids it was sealed with.
        let origin = sealed.iter().find(|s| s.envelope == v.envelope && s.number == v.number).filter(|_| ids_untouched);
        let opened = runtime().block_on(envelope::open(kms(), &ctx, &v.envelope));
        match (&opened, origin) {
            (Ok(got), Some(s)) => assert_eq!(got.expose_value(), s.value, "opened to another value"),
            (Ok(_), None) => panic!("an envelope opened after its bytes, its number or its ids were changed"),
            (Err(e), Some(_)) => panic!("an untouched envelope failed to open: {e}"),
            (Err(e), None) => {
                let _ = e.to_string();
            }
        }
        // The same envelope as another version, or under another key's
        // context, never opens. (`KeyId::generate` slices the tag out of a
        // well-formed tenant id; a stored one may be any string.)
        let renumbered = KeyContext { version: v.number ^ 1, ..ctx.clone() };
        assert!(runtime().block_on(envelope::open(kms(), &renumbered, &v.envelope)).is_err());
        let moved = KeyContext { key_id: KeyId::generate(&tenant), ..ctx };
        assert!(runtime().block_on(envelope::open(kms(), &moved, &v.envelope)).is_err());
    }
});
