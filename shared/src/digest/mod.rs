//! A verifiable audit log: signed digests over each audit shard, in the
//! style of CloudTrail's log-file validation, at no extra write per event.
//!
//! **What a digest is.** For each of a tenant's audit shards
//! (`<tenantId>#<shard>`), the scheduled run ([`run`]: the cleanup function,
//! `ibyok dev` on its `--purge-every` schedule, `ibyok admin digest`) takes
//! the events written since the shard's last digest, up to
//! [`SETTLE_SECONDS`] ago, computes each event's hash over its canonical
//! serialisation ([`canonical_event`], version 1), and signs a statement
//! ([`Statement`]) holding the Merkle root of those hashes ([`merkle_root`],
//! RFC 6962), their count, the time range, and the SHA-256 of the previous
//! digest's statement (a chain per shard), with a dedicated asymmetric KMS
//! key (ECDSA P-256, SHA-256). Beside the signed statement the digest keeps
//! its index ([`Leaf`]: each event's time, id and hash, in order), which the
//! root authenticates, so that a verifier can name each event changed,
//! deleted, inserted or moved, not only say that a digest does not match.
//!
//! **Concurrent writers.** A digest covers only events whose time is at
//! least [`SETTLE_SECONDS`] (5 minutes) old. An event's time is its
//! request's start, and no request outlives its function's 20 s timeout, so
//! every write and every take-back of an event lands long before the run
//! that covers it: no late writer slips behind a digest.
//!
//! **Retention.** Events carry a TTL (`IBYOK_AUDIT_RETENTION_DAYS`). A
//! digest records the earliest expiry of its events (`firstExpiry`); from
//! then on DynamoDB may remove some of them, so a verifier checks that
//! digest's signature and place in the chain but not its events. A digest
//! itself expires [`DIGEST_MARGIN_SECONDS`] after the retention of the
//! newest event it can cover, and its successor records when
//! (`prevExpiresAt`), so a predecessor gone by expiry is told from one
//! deleted.
//!
//! **Every shard starts a chain.** A tenant's first run writes a digest
//! for each of its [`AUDIT_SHARDS`] shards, empty or not (and the heartbeat
//! keeps each one going), so an event inserted into the past of any shard,
//! even one no event had reached, falls inside a signed range and is named.
//!
//! **What it does not do.** It detects changes after the fact; it does not
//! prevent them. Events newer than the shard's last digest are not yet
//! covered (at most [`SETTLE_SECONDS`] plus the schedule's interval). A
//! shard whose newest digests are deleted with their events shows as a gap
//! only once its newest remaining digest is older than the heartbeat
//! ([`HEARTBEAT_SECONDS`]: a quiet shard still gets a digest a day).

use crate::clock::Timestamp;
use crate::fault::{Fault, FaultKind};
use crate::ids::TenantId;
use crate::kms::{KmsError, Signer};
use crate::store::schema::AUDIT_SHARDS;
use crate::store::{audit_shard, AuditDigest, AuditEvent, Conflict, DigestStore, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};

/// The canonical serialisation's version (the `v` of an event and of a
/// statement).
pub const FORMAT: u64 = 1;
/// Only events at least this old are digested.
pub const SETTLE_SECONDS: i64 = 300;
/// A shard with no new events still gets a digest once its last one is
/// this old, so that deleting the newest digests shows as a gap.
pub const HEARTBEAT_SECONDS: i64 = 86_400;
/// At most this many events in one digest (its index stays under
/// DynamoDB's 400 KB item limit: ~61 bytes an event); more make several
/// digests in one run.
pub const MAX_EVENTS: usize = 4_000;
/// A digest is kept this long past the retention of the events it covers.
pub const DIGEST_MARGIN_SECONDS: i64 = 2 * 86_400;
/// The signing algorithm (KMS `ECDSA_SHA_256` over the statement's bytes).
pub const ALGORITHM: &str = "ECDSA_SHA_256";

pub type Hash = [u8; 32];

/// The canonical serialisation of an event, version 1: the event as
/// `GET /audit` shows it, plus `eventId`, with `at` as integer
/// milliseconds, `v: 1`, absent and `null` fields left out, written as
/// RFC 8785 (JCS) JSON: keys sorted, no whitespace, strings escaped as
/// JSON requires and nothing more. The tenant is not part of it (a digest
/// names its tenant and shard); neither is the retention TTL.
pub fn canonical_event(e: &AuditEvent) -> Vec<u8> {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("at".into(), Value::from(e.at.millis()));
        m.insert("eventId".into(), Value::from(e.event_id.clone()));
        m.insert("v".into(), Value::from(FORMAT));
    }
    let mut out = Vec::new();
    write_canonical(&v, &mut out);
    out
}

/// RFC 8785 for the values events and statements hold (strings, integers,
/// booleans, objects, arrays; `null` members left out).
fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::from(k.as_str()).to_string().as_bytes());
                out.push(b':');
                write_canonical(&m[k], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(x, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// An event's leaf hash: SHA-256 of `0x00` and its canonical bytes.
pub fn event_hash(e: &AuditEvent) -> Hash {
    Sha256::new().chain_update([0u8]).chain_update(canonical_event(e)).finalize().into()
}

/// The Merkle tree hash of RFC 6962 (section 2.1) over leaf hashes: an
/// empty list hashes to SHA-256 of nothing; a node is SHA-256 of `0x01`,
/// the left and the right hash; a list splits at the largest power of two
/// below its length.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            let (l, r) = leaves.split_at(k);
            Sha256::new()
                .chain_update([1u8])
                .chain_update(merkle_root(l))
                .chain_update(merkle_root(r))
                .finalize()
                .into()
        }
    }
}

/// What a digest signs, serialised canonically (RFC 8785) as the bytes
/// signed and chained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    pub v: u64,
    pub tenant_id: String,
    pub shard: u32,
    /// 0 for a shard's first digest, then one more each.
    pub seq: u64,
    /// The range covered: events with `after < at <= through` (epoch
    /// milliseconds); `after` is the previous digest's `through`, 0 first.
    pub after: i64,
    pub through: i64,
    pub count: u64,
    /// Hex of the Merkle root of the events' hashes, oldest first (by time,
    /// then event id).
    pub root: String,
    /// Hex of SHA-256 of the previous digest's statement; 64 zeros first.
    pub prev: String,
    /// When the previous digest expires (its absence after that is no gap).
    pub prev_expires_at: Option<i64>,
    /// When this digest expires (its TTL).
    pub expires_at: Option<i64>,
    /// The earliest retention expiry of its events: after it, its events
    /// are no longer checked.
    pub first_expiry: Option<i64>,
    /// The signing key (the KMS key's ARN or id; `local` for `ibyok dev`).
    pub key_id: String,
    pub created_at: i64,
}

impl Statement {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_canonical(&serde_json::to_value(self).unwrap_or(Value::Null), &mut out);
        out
    }
}

/// The chain's link: SHA-256 of a statement's bytes, in hex.
pub fn statement_hash(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One entry of a digest's index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub at: i64,
    pub event_id: String,
    pub hash: Hash,
}

/// The index's bytes, version 1: per event, in order, `at` (8 bytes, big
/// endian, milliseconds), the event id's length (1 byte) and bytes, and
/// the leaf hash (32 bytes).
pub fn encode_index(leaves: &[Leaf]) -> Vec<u8> {
    let mut out = Vec::with_capacity(leaves.len() * 61);
    for l in leaves {
        out.extend_from_slice(&l.at.to_be_bytes());
        let id = &l.event_id.as_bytes()[..l.event_id.len().min(255)];
        out.push(id.len() as u8);
        out.extend_from_slice(id);
        out.extend_from_slice(&l.hash);
    }
    out
}

pub fn decode_index(mut b: &[u8]) -> Option<Vec<Leaf>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let at = i64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let n = usize::from(*b.get(8)?);
        let id = std::str::from_utf8(b.get(9..9 + n)?).ok()?.to_owned();
        let hash: Hash = b.get(9 + n..9 + n + 32)?.try_into().ok()?;
        out.push(Leaf { at, event_id: id, hash });
        b = &b[9 + n + 32..];
    }
    Some(out)
}

/// What one digest run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestReport {
    pub tenants: usize,
    /// Digests written (each one KMS `Sign`).
    pub digests: usize,
    /// Events they cover.
    pub events: usize,
    /// Shards skipped because another run wrote their next digest first.
    pub raced: usize,
}

fn signing_failed(e: KmsError) -> StoreError {
    match e {
        KmsError::Unavailable(f) => StoreError::Unavailable(f),
        KmsError::Internal(f) => StoreError::Internal(f),
        KmsError::Integrity => StoreError::internal(FaultKind::Service, "the audit signing key refused to sign"),
    }
}

/// Digests every tenant's shards up to `now` − [`SETTLE_SECONDS`]
/// (module docs). Idempotent and safe to run concurrently: a digest's seq
/// is written once per shard, so a second run's write fails and it moves on.
pub async fn run<S: DigestStore + ?Sized>(
    store: &S,
    signer: &dyn Signer,
    now: Timestamp,
    retention_days: i64,
) -> Result<DigestReport, StoreError> {
    let tenants = store.digest_tenants().await?;
    let mut report = DigestReport { tenants: tenants.len(), ..DigestReport::default() };
    for tenant in &tenants {
        let shards = (0..AUDIT_SHARDS).map(|shard| digest_shard(store, signer, tenant, shard, now, retention_days));
        for r in futures::future::join_all(shards).await {
            let r = r?;
            report.digests += r.digests;
            report.events += r.events;
            report.raced += r.raced;
        }
    }
    tracing::info!(tenants = report.tenants, digests = report.digests, events = report.events, "audit digests");
    Ok(report)
}

async fn digest_shard<S: DigestStore + ?Sized>(
    store: &S,
    signer: &dyn Signer,
    tenant: &TenantId,
    shard: u32,
    now: Timestamp,
    retention_days: i64,
) -> Result<DigestReport, StoreError> {
    let mut report = DigestReport::default();
    let cutoff = now.plus_seconds(-SETTLE_SECONDS).millis();
    let last = store.last_digest(tenant, shard).await?;
    let (mut seq, mut after, mut prev, mut prev_expires_at, mut heartbeat_due) = match &last {
        // A shard's first digest is written empty or not (module docs).
        None => (0, 0, "0".repeat(64), None, true),
        Some(d) => {
            let s = parse_statement(&d.statement)
                .ok_or_else(|| StoreError::internal(FaultKind::Data, "a stored digest's statement does not parse"))?;
            (
                s.seq + 1,
                s.through,
                statement_hash(d.statement.as_bytes()),
                s.expires_at,
                cutoff - s.through >= HEARTBEAT_SECONDS * 1000,
            )
        }
    };
    while after < cutoff {
        let mut events = store.shard_events(tenant, shard, after, cutoff, MAX_EVENTS + 1).await?;
        let mut through = cutoff;
        let full = events.len() > MAX_EVENTS;
        if full {
            // Cut after the last whole millisecond (a shard takes at most
            // 1,000 writes a second, so a millisecond never fills a digest).
            let next_at = events[MAX_EVENTS].at.millis();
            events.truncate(MAX_EVENTS);
            let last_at = events.last().map_or(after, |e| e.at.millis());
            through = last_at;
            if next_at == last_at {
                events.retain(|e| e.at.millis() < last_at);
                through = last_at - 1;
            }
        }
        if events.is_empty() && !heartbeat_due {
            break;
        }
        let leaves: Vec<Leaf> = events
            .iter()
            .map(|e| Leaf { at: e.at.millis(), event_id: e.event_id.clone(), hash: event_hash(e) })
            .collect();
        let hashes: Vec<Hash> = leaves.iter().map(|l| l.hash).collect();
        let expires_at = now.plus_seconds(retention_days * 86_400 + DIGEST_MARGIN_SECONDS).millis();
        let statement = Statement {
            v: FORMAT,
            tenant_id: tenant.to_string(),
            shard,
            seq,
            after,
            through,
            count: leaves.len() as u64,
            root: hex(&merkle_root(&hashes)),
            prev: prev.clone(),
            prev_expires_at,
            expires_at: Some(expires_at),
            first_expiry: events.iter().filter_map(|e| e.retain_until).map(Timestamp::millis).min(),
            key_id: signer.key_id().to_owned(),
            created_at: now.millis(),
        };
        let bytes = statement.to_bytes();
        let signature = signer.sign(&bytes).await.map_err(signing_failed)?;
        let text =
            String::from_utf8(bytes).map_err(|_| StoreError::internal(FaultKind::Local, "a statement is not UTF-8"))?;
        let digest = AuditDigest {
            tenant_id: tenant.clone(),
            shard,
            seq,
            through: Timestamp::from_millis(through),
            statement: text,
            signature,
            index: encode_index(&leaves),
            expires_at: Some(Timestamp::from_millis(expires_at)),
        };
        match store.put_digest(&digest).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::Exists)) => {
                report.raced += 1;
                return Ok(report);
            }
            Err(e) => return Err(e),
        }
        report.digests += 1;
        report.events += leaves.len();
        prev = statement_hash(digest.statement.as_bytes());
        prev_expires_at = Some(expires_at);
        seq += 1;
        after = through;
        heartbeat_due = false;
        if !full {
            break;
        }
    }
    Ok(report)
}

/// Checking digests against the events: what `ibyok audit verify` runs.
mod verify;
pub use verify::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u8) -> Hash {
        Sha256::new().chain_update([0u8]).chain_update([i]).finalize().into()
    }

    fn node(l: Hash, r: Hash) -> Hash {
        Sha256::new().chain_update([1u8]).chain_update(l).chain_update(r).finalize().into()
    }

    #[test]
    fn merkle_root_follows_rfc_6962() {
        let (a, b, c, d, e) = (leaf(0), leaf(1), leaf(2), leaf(3), leaf(4));
        assert_eq!(merkle_root(&[]), <[u8; 32]>::from(Sha256::digest([])));
        assert_eq!(merkle_root(&[a]), a);
        assert_eq!(merkle_root(&[a, b]), node(a, b));
        assert_eq!(merkle_root(&[a, b, c]), node(node(a, b), c));
        assert_eq!(merkle_root(&[a, b, c, d]), node(node(a, b), node(c, d)));
        assert_eq!(merkle_root(&[a, b, c, d, e]), node(node(node(a, b), node(c, d)), e));
        assert_ne!(merkle_root(&[b, a]), merkle_root(&[a, b]));
    }

    #[test]
    fn canonical_event_is_sorted_compact_and_versioned() {
        use crate::store::{AuditAction, Outcome};
        let e = AuditEvent {
            tenant_id: None,
            at: Timestamp::from_millis(1_700_000_000_123),
            request_id: "r\"1".into(),
            action: AuditAction::KeyRead,
            token_id: None,
            key_id: None,
            version: Some(2),
            environment: None,
            effective_mode: None,
            outcome: Outcome::Ok,
            source_ip: Some("10.0.0.1".into()),
            user_agent: None,
            actor: None,
            identity_id: None,
            detail: None,
            event_id: "000000000001abcdefgh".into(),
            retain_until: Some(Timestamp::from_millis(1)),
        };
        assert_eq!(
            String::from_utf8(canonical_event(&e)).unwrap(),
            r#"{"action":"key.read","at":1700000000123,"eventId":"000000000001abcdefgh","outcome":"ok","requestId":"r\"1","sourceIp":"10.0.0.1","v":1,"version":2}"#
        );
    }

    #[test]
    fn index_round_trips() {
        let leaves = vec![
            Leaf { at: 5, event_id: "a".into(), hash: leaf(1) },
            Leaf { at: -1, event_id: "bcd".into(), hash: leaf(2) },
        ];
        assert_eq!(decode_index(&encode_index(&leaves)), Some(leaves));
        assert_eq!(decode_index(&[1, 2, 3]), None);
    }
}
